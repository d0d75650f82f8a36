// SPDX-License-Identifier: MIT OR Apache-2.0
//! The open-set protocol over the sign designs: a region's catalogue known, the other groups seen or unseen by seed,
//! group-disjoint, and the shipped config and demo drive holding to it.

use std::collections::{BTreeMap, BTreeSet};

use odm_trainer::data::group_of;
use odm_trainer::synth::clip::ClipConfig;
use odm_trainer::synth::designs::Catalogue;
use odm_trainer::synth::protocol;
use odm_trainer::train::config::TrainConfig;

fn config_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/signs/train.json")
}

#[test]
fn european_protocol_is_group_disjoint_and_complete() {
    let catalogue = Catalogue::open(None).unwrap();
    let p = protocol::build(&catalogue, "eu", 0.4, 1).unwrap();
    assert!(p.in_dist.len() >= 100 && p.seen_ood.len() >= 200 && !p.unseen_ood.is_empty(), "{p:?}");
    // Every design has exactly one role, and every group is on one side.
    let mut role: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, list) in [("in", &p.in_dist), ("seen", &p.seen_ood), ("unseen", &p.unseen_ood), ("aside", &p.aside)] {
        for d in list {
            assert!(role.insert(d, name).is_none(), "{d} in two roles");
        }
    }
    assert_eq!(role.len(), catalogue.designs.len());
    let mut side: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (d, r) in &role {
        let r = if *r == "aside" { "in" } else { r };
        side.entry(group_of(d)).or_default().insert(r);
    }
    for (g, sides) in &side {
        assert_eq!(sides.len(), 1, "group {g} is on {sides:?}");
    }
    // Known is Europe's catalogue: speed limits in the red ring, stop and give way; nothing only American.
    for d in ["regulatory--maximum-speed-limit-50--g1", "regulatory--stop--g1", "regulatory--yield--g1"] {
        assert!(p.in_dist.iter().any(|x| x == d), "{d} is known");
    }
    for d in &p.in_dist {
        let r = &catalogue.get(d).unwrap().regions;
        assert!(r.iter().any(|x| x == "eu"), "{d}: {r:?}");
    }
    // Seeded: the same seed gives the same protocol, another seed another seen/unseen split, the same known.
    assert_eq!(p, protocol::build(&catalogue, "eu", 0.4, 1).unwrap());
    let q = protocol::build(&catalogue, "eu", 0.4, 2).unwrap();
    assert_eq!(q.in_dist, p.in_dist);
    assert_ne!(q.seen_ood, p.seen_ood);
}

#[test]
fn small_regions_and_bad_inputs_are_refused() {
    let catalogue = Catalogue::open(None).unwrap();
    let e = protocol::build(&catalogue, "br", 0.4, 1).unwrap_err().to_string();
    assert!(e.contains("region br") && e.contains("fewer than the 100"), "{e}");
    let e = protocol::build(&catalogue, "mars", 0.4, 1).unwrap_err().to_string();
    assert!(e.contains("\"mars\""), "{e}");
    let e = protocol::build(&catalogue, "eu", 0.01, 1).unwrap_err().to_string();
    assert!(e.contains("seen out-of-distribution") && e.contains("fewer than the 200"), "{e}");
    assert!(protocol::build(&catalogue, "eu", 1.5, 1).is_err());
}

#[test]
fn shipped_config_and_demo_drive_hold_to_the_protocol() {
    let catalogue = Catalogue::open(None).unwrap();
    let p = protocol::build(&catalogue, "eu", 0.4, 1).unwrap();
    let cfg = TrainConfig::load(&config_path()).unwrap();
    assert_eq!(cfg.in_dist, p.in_dist, "models/signs/train.json is `odm-train protocol --region eu --seed 1`");
    assert_eq!(cfg.seen_ood, p.seen_ood);
    assert_eq!(cfg.unseen_ood, p.unseen_ood);
    let info = cfg.protocol.expect("the config records its protocol");
    assert_eq!((info.region.as_str(), info.seed, &info.aside), ("eu", 1, &p.aside));
    let clip = ClipConfig::default();
    for k in &clip.known {
        assert!(p.in_dist.contains(k), "drive's known sign {k} is not known");
    }
    for u in &clip.unknown {
        assert!(p.unseen_ood.contains(u), "drive's unknown sign {u} is not in the unseen set");
    }
}

#[test]
fn protocol_is_written_into_a_config_keeping_its_other_fields() {
    let catalogue = Catalogue::open(None).unwrap();
    let p = protocol::build(&catalogue, "eu", 0.4, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.json");
    std::fs::write(&path, r#"{"arch": "wrn-10-2", "steps": 7, "in_dist": ["x"]}"#).unwrap();
    protocol::write_into(&p, &path).unwrap();
    let cfg = TrainConfig::load(&path).unwrap();
    assert_eq!((cfg.arch.as_str(), cfg.steps), ("wrn-10-2", 7));
    assert_eq!(cfg.in_dist, p.in_dist);
    assert_eq!(cfg.protocol.unwrap().seed, 3);
    // A config that is not JSON is refused and left as it was.
    std::fs::write(&path, "not json").unwrap();
    assert!(protocol::write_into(&p, &path).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
}

#[test]
fn validation_protocol_never_touches_the_test_designs() {
    let catalogue = Catalogue::open(None).unwrap();
    let p = protocol::build(&catalogue, "eu", 0.4, 1).unwrap();
    let v = protocol::validation(&p, 0.6, 1).unwrap();
    assert_eq!(v.in_dist, p.in_dist);
    assert!(!v.seen_ood.is_empty() && !v.unseen_ood.is_empty());
    for d in v.seen_ood.iter().chain(&v.unseen_ood) {
        assert!(p.seen_ood.contains(d), "{d} is not a seen design of the test protocol");
    }
    for d in &p.unseen_ood {
        assert!(v.aside.contains(d), "test design {d} must be set aside");
    }
    let seen_groups: BTreeSet<String> = v.seen_ood.iter().map(|d| group_of(d)).collect();
    for d in &v.unseen_ood {
        assert!(!seen_groups.contains(&group_of(d)), "{d}'s group is on both sides");
    }
    assert_eq!(v.seen_ood.len() + v.unseen_ood.len(), p.seen_ood.len());
    assert!(protocol::validation(&p, 1.5, 1).is_err(), "a fraction above 1 is refused, not a panic");
}

#[test]
fn known_set_has_plates_so_every_category_can_be_named() {
    let catalogue = Catalogue::open(None).unwrap();
    let p = protocol::build(&catalogue, "eu", 0.4, 1).unwrap();
    let cats: BTreeSet<&str> = p.in_dist.iter().map(|d| catalogue.get(d).unwrap().category.as_str()).collect();
    assert_eq!(cats.into_iter().collect::<Vec<_>>(), ["complementary", "information", "regulatory", "warning"]);
}
