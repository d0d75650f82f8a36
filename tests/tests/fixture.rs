// SPDX-License-Identifier: MIT OR Apache-2.0
//! The committed test model is exactly what its documented command writes.

use odm_e2e::repo;

#[test]
fn committed_colors_model_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    odm_trainer::export::fixture::write(dir.path()).unwrap();
    for f in ["colors.onnx", "colors.odm.json"] {
        let fresh = std::fs::read(dir.path().join(f)).unwrap();
        let committed = std::fs::read(repo().join("models/colors").join(f)).unwrap();
        assert!(fresh == committed, "models/colors/{f} differs from `odm-train fixture --out models/colors`");
    }
    odm_core::Bundle::open(&repo().join("models/colors/colors.odm.json")).unwrap();
}
