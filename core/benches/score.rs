// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scoring time per crop on the shipped signs bundle (172 classes, 362 category references, 32-d embeddings): the
//! thresholds alone against the reference rule, and a novelty's category by the nearest design against the bundle's
//! vote of the nearest designs, side by side in one run: `cargo bench -p odm-core --bench score`.
//! The embeddings are the class centres and the references moved by a fixed pseudo-random offset, so that every
//! verdict occurs.

use std::path::Path;
use std::time::Instant;

use odm_core::{Bundle, Scorer, Verdict};

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/signs/signs.odm.json");
    let bundle = Bundle::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dim = bundle.dim();
    // Every centre and reference, each moved by offsets of three sizes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let bases = bundle.classes.iter().map(|c| &c.center).chain(bundle.category_refs.iter().map(|r| &r.center));
    let mut rows: Vec<f32> = Vec::new();
    for base in bases.collect::<Vec<_>>() {
        for scale in [1.0f32, 3.0, 8.0] {
            rows.extend(base.iter().map(|v| v + scale * next()));
        }
    }
    let n = rows.len() / dim;
    let mut plain = Scorer::new(&bundle);
    plain.set_reference_ratio(None).expect("no rule");
    let rule = Scorer::new(&bundle);
    let mut nearest = Scorer::new(&bundle);
    nearest.set_category_votes(1).expect("one vote");
    let mut plain_nearest = Scorer::new(&bundle);
    plain_nearest.set_reference_ratio(None).expect("no rule");
    plain_nearest.set_category_votes(1).expect("one vote");
    println!(
        "{n} embeddings of {dim} floats; {} classes, {} references, ratio {:?}, category votes {}\n",
        bundle.classes.len(),
        rule.num_references(),
        rule.reference_ratio(),
        rule.category_votes()
    );
    println!("| scorer | known | novelty | anomaly | µs/crop median | µs/crop best |\n|---|---:|---:|---:|---:|---:|");
    // This machine is shared and noisy: 9 rounds, interleaved, each over every embedding.
    let scorers = [&plain_nearest, &plain, &nearest, &rule];
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut counts = [[0usize; 3]; 4];
    for round in 0..9 {
        for (i, s) in scorers.into_iter().enumerate() {
            let t = Instant::now();
            let mut c = [0usize; 3];
            for e in rows.chunks_exact(dim) {
                let v = std::hint::black_box(s.score(e)).map(|r| r.verdict);
                if let Some(k) = v.and_then(|v| Verdict::ALL.iter().position(|w| *w == v)) {
                    c[k] += 1;
                }
            }
            times[i].push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            if round == 0 {
                counts[i] = c;
            }
        }
    }
    let names = [
        "thresholds alone (reference-ratio=0), nearest design (category-votes=1)",
        "thresholds alone (reference-ratio=0), the bundle's vote",
        "reference rule (the bundle's), nearest design (category-votes=1)",
        "reference rule and vote (the bundle's)",
    ];
    for (i, name) in names.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        let c = counts[i];
        println!("| {name} | {} | {} | {} | {:.2} | {:.2} |", c[0], c[1], c[2], t[t.len() / 2], t[0]);
    }
}
