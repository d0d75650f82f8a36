// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the trainer's test files share: a tiny synthetic world.

use std::path::Path;

use odm_trainer::synth::{self, SynthConfig};

/// Six classes (three to keep in distribution, one seen OOD, two unseen), `train` + `test` crops each, 40
/// background patches, no noise.
pub fn six_classes(dir: &Path, seed: u64, train: usize, test: usize) {
    let c = SynthConfig {
        seed,
        train_per_class: train,
        test_per_class: test,
        background: 40,
        noise: 0,
        classes: [
            "regulatory--maximum-speed-limit-30--g1",
            "regulatory--stop--g1",
            "regulatory--yield--g1",
            "regulatory--keep-left--g1",
            "warning--other-danger--g1",
            "regulatory--no-motor-vehicles--g1",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    synth::run(dir, &c, false).unwrap();
}
