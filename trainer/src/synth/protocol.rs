// SPDX-License-Identifier: MIT OR Apache-2.0
//! The open-set protocol over the design catalogue, in the manner of the paper's Tsinghua protocol (section 4.2):
//! known designs, seen out-of-distribution designs (pushed away by ODM in training), unseen designs (never trained
//! nor calibrated on: the novelty test), split by groups so that the variants of one sign are on one side.
//!
//! Known is a region's catalogue rather than a random half: a dashcam model is trained for the signs of where it
//! drives. For `eu` it is every design the taxonomy marks as European and not as American (`eu` in its regions,
//! `us` not: the Vienna-convention designs, speed limits in a red ring, blue mandatory discs, red-rimmed warning
//! triangles), plus the few designs every region uses (stop, give way, no entry). The taxonomy marks nearly every
//! complementary plate (distances, arrows, "except bicycles") as both European and American, so that rule gives no
//! plate, while a dashcam in Europe meets plates under its signs: [`PLATES`] complementary groups with designs in the
//! region are drawn (once, whatever the split's seed) into the known set (their variants in the region). Without them no known class is a
//! plate, and an unknown plate could never be given its category. The other variants of a known sign (its US or
//! Brazilian styles, say) are set aside: neither known nor out-of-distribution, so no group sits on two sides. The
//! remaining groups are drawn by seed into seen and unseen.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use odm_core::taxonomy::Category;

use super::designs::Catalogue;
use crate::error::TrainError;
use crate::train::config::ProtocolInfo;

/// Regions of `mapping.json`.
pub const REGIONS: &[&str] = &["eu", "us", "au", "br", "ca"];

/// Roles of every design of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocol {
    pub region: String,
    /// How `in_dist` was chosen, in words (recorded in configs and bundles).
    pub rule: String,
    pub seed: u64,
    pub in_dist: Vec<String>,
    pub seen_ood: Vec<String>,
    pub unseen_ood: Vec<String>,
    /// Other variants of known signs: in no role.
    pub aside: Vec<String>,
}

/// Complementary groups drawn into the known set.
pub const PLATES: usize = 16;

/// Minimum sizes the issue asks of a protocol: a region's catalogue of at least 100 designs, hundreds of seen OOD.
pub const MIN_KNOWN: usize = 100;
pub const MIN_SEEN: usize = 200;

/// Build the protocol: known = `region`'s own designs (in the region and not in `us`, or not in `eu` for `us`)
/// plus the designs of every region and [`PLATES`] complementary groups; the other groups split by seed, `seen_fraction` of them seen.
pub fn build(catalogue: &Catalogue, region: &str, seen_fraction: f64, seed: u64) -> Result<Protocol, TrainError> {
    if !REGIONS.contains(&region) {
        return Err(TrainError::Config(format!("region {region:?} is none of {}", REGIONS.join(", "))));
    }
    if !(0.0..=1.0).contains(&seen_fraction) {
        return Err(TrainError::Config(format!("seen fraction {seen_fraction} is not in [0, 1]")));
    }
    let other = if region == "us" { "eu" } else { "us" };
    let universal = |r: &[String]| REGIONS.iter().all(|x| r.iter().any(|y| y == x));
    let own = |r: &[String]| r.iter().any(|x| x == region) && !r.iter().any(|x| x == other);
    let in_region = |r: &[String]| r.iter().any(|x| x == region);
    let mut plate_groups: Vec<&str> = catalogue
        .designs
        .iter()
        .filter(|d| d.category == Category::Complementary && in_region(&d.regions))
        .map(|d| d.group.as_str())
        .collect();
    plate_groups.dedup();
    // A fixed draw: the region's catalogue does not change with the seed of the seen/unseen split.
    plate_groups.shuffle(&mut Pcg64::seed_from_u64(0x706c_6174_6573));
    plate_groups.truncate(PLATES);
    let in_dist: Vec<String> = catalogue
        .designs
        .iter()
        .filter(|d| {
            own(&d.regions)
                || universal(&d.regions)
                || (plate_groups.contains(&d.group.as_str()) && in_region(&d.regions))
        })
        .map(|d| d.name.clone())
        .collect();
    let known_groups: BTreeSet<&str> =
        catalogue.designs.iter().filter(|d| in_dist.contains(&d.name)).map(|d| d.group.as_str()).collect();
    let aside: Vec<String> = catalogue
        .designs
        .iter()
        .filter(|d| known_groups.contains(d.group.as_str()) && !in_dist.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    let mut rest: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in catalogue.designs.iter().filter(|d| !known_groups.contains(d.group.as_str())) {
        rest.entry(d.group.as_str()).or_default().push(d.name.as_str());
    }
    let mut groups: Vec<&str> = rest.keys().copied().collect();
    groups.shuffle(&mut Pcg64::seed_from_u64(seed));
    let n_seen = (groups.len() as f64 * seen_fraction).round() as usize;
    let names = |gs: &[&str]| {
        let mut v: Vec<String> = gs.iter().flat_map(|g| rest[g].iter().map(|n| n.to_string())).collect();
        v.sort();
        v
    };
    let p = Protocol {
        region: region.into(),
        rule: format!(
            "known: designs whose regions include {region} and not {other}, the designs of every region, and the \
             {region} variants of {PLATES} complementary groups drawn once (a fixed draw); aside: the other variants of known \
             signs; seen and unseen: the remaining groups, {:.0}% seen, drawn by seed {seed}",
            seen_fraction * 100.0
        ),
        seed,
        seen_ood: names(&groups[..n_seen]),
        unseen_ood: names(&groups[n_seen..]),
        in_dist,
        aside,
    };
    check(&p)?;
    Ok(p)
}

/// The validation protocol of `p`, for choosing a network or a recipe without looking at the test designs: the
/// seen groups split again by seed, `1 - seen_fraction` of them (rounded up) playing the unseen designs; the real
/// unseen designs are set aside. Known designs stay as they are.
pub fn validation(p: &Protocol, seen_fraction: f64, seed: u64) -> Result<Protocol, TrainError> {
    if !(0.0..=1.0).contains(&seen_fraction) {
        return Err(TrainError::Config(format!("validation seen fraction {seen_fraction} is not in [0, 1]")));
    }
    let group = |n: &str| n.rsplit_once("--").map_or(n, |(g, _)| g).to_owned();
    let mut groups: Vec<String> = p.seen_ood.iter().map(|n| group(n)).collect();
    groups.dedup();
    groups.shuffle(&mut Pcg64::seed_from_u64(seed ^ 0x7661_6c69_6461_7465));
    let n_seen = (groups.len() as f64 * seen_fraction).floor() as usize;
    let seen_groups: BTreeSet<&String> = groups[..n_seen].iter().collect();
    let (seen, unseen): (Vec<String>, Vec<String>) =
        p.seen_ood.iter().cloned().partition(|n| seen_groups.contains(&group(n)));
    let mut aside = p.aside.clone();
    aside.extend(p.unseen_ood.iter().cloned());
    aside.sort();
    if seen.is_empty() || unseen.is_empty() {
        return Err(TrainError::Config(format!(
            "validation split of {} seen designs leaves a side empty",
            groups.len()
        )));
    }
    Ok(Protocol {
        region: p.region.clone(),
        rule: format!(
            "validation: {}; then the seen groups split again, {:.0}% seen, the rest as unseen, by seed {seed}; the \
             test's unseen designs set aside",
            p.rule,
            seen_fraction * 100.0
        ),
        seed: p.seed,
        in_dist: p.in_dist.clone(),
        seen_ood: seen,
        unseen_ood: unseen,
        aside,
    })
}

/// Refuse a protocol too small to be one: fewer than [`MIN_KNOWN`] known or [`MIN_SEEN`] seen designs, no unseen.
pub fn check(p: &Protocol) -> Result<(), TrainError> {
    let few = |what: &str, n: usize, min: usize| {
        TrainError::Config(format!(
            "region {}: {n} {what} designs, fewer than the {min} an open-set protocol needs",
            p.region
        ))
    };
    if p.in_dist.len() < MIN_KNOWN {
        return Err(few("known", p.in_dist.len(), MIN_KNOWN));
    }
    if p.seen_ood.len() < MIN_SEEN {
        return Err(few("seen out-of-distribution", p.seen_ood.len(), MIN_SEEN));
    }
    if p.unseen_ood.is_empty() {
        return Err(few("unseen", 0, 1));
    }
    Ok(())
}

/// Write the protocol's lists (and its [`ProtocolInfo`]) into the training config at `path`, keeping its other
/// fields and their order; a missing file is created. Written to a temporary file and renamed, so a failure leaves
/// the old config whole. Returns the number of designs with a role.
pub fn write_into(p: &Protocol, path: &std::path::Path) -> Result<usize, TrainError> {
    let mut doc: serde_json::Map<String, serde_json::Value> = if path.exists() {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?
    } else {
        serde_json::Map::new()
    };
    let info = ProtocolInfo { region: p.region.clone(), rule: p.rule.clone(), seed: p.seed, aside: p.aside.clone() };
    let json = |v: &[String]| serde_json::Value::from(v.to_vec());
    doc.insert("in_dist".into(), json(&p.in_dist));
    doc.insert("seen_ood".into(), json(&p.seen_ood));
    doc.insert("unseen_ood".into(), json(&p.unseen_ood));
    doc.insert("protocol".into(), serde_json::to_value(&info).map_err(|e| TrainError::Config(e.to_string()))?);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| TrainError::Config(e.to_string()))? + "\n";
    // The result must still be a valid config.
    serde_json::from_str::<crate::train::config::TrainConfig>(&text)
        .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(TrainError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(TrainError::io(path))?;
    Ok(p.in_dist.len() + p.seen_ood.len() + p.unseen_ood.len())
}
