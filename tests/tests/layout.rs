// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crate arrows of docs/layout.md are the manifests' own: each workspace crate depends on exactly the workspace
//! crates the table says (dependencies, dev-dependencies marked "tests only"), and nothing points upward.

use std::collections::BTreeMap;

use odm_e2e::repo;

const CRATES: &[(&str, &str)] = &[
    ("odm-core", "core"),
    ("odm-runtime", "runtime"),
    ("gst-plugin-odm", "plugin"),
    ("odm-trainer", "trainer"),
    ("odm-e2e", "tests"),
];

/// The workspace crates a manifest names, each with whether only as a dev-dependency.
fn arrows(folder: &str) -> BTreeMap<String, bool> {
    let path = repo().join(folder).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut section = String::new();
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let name = line.split(|c: char| c == '=' || c == '.' || c.is_whitespace()).next().unwrap_or("");
        if CRATES.iter().any(|(c, _)| *c == name) && section.contains("dependencies") {
            let dev = section.contains("dev-dependencies");
            let e = out.entry(name.to_owned()).or_insert(dev);
            *e = *e && dev;
        }
    }
    out
}

/// The table between the markers of docs/layout.md: crate -> its arrows as written.
fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("docs/layout.md")).unwrap();
    let start = text.find("<!-- crate arrows").expect("docs/layout.md has the crate arrows table");
    let end = start + text[start..].find("<!-- end of crate arrows -->").expect("the table ends");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| crate"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].split_whitespace().next().unwrap().to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn the_crate_arrows_are_as_documented_and_none_points_upward() {
    let table = documented();
    let rank = |c: &str| CRATES.iter().position(|(n, _)| *n == c).unwrap();
    for (name, folder) in CRATES {
        let got = arrows(folder);
        let names = got.keys().cloned().collect::<Vec<_>>().join(", ");
        let text = if got.is_empty() {
            "—".to_owned()
        } else if got.values().all(|dev| *dev) {
            format!("{names} (tests only)")
        } else {
            names
        };
        assert_eq!(table.get(*name), Some(&text), "{name}: the manifest's arrows against docs/layout.md");
        for dep in got.keys() {
            assert!(rank(dep) < rank(name), "{name} -> {dep} points upward");
            assert!(!matches!(*name, "odm-core" | "odm-runtime"), "{name} must depend on no workspace crate");
        }
    }
    assert!(!arrows("plugin").contains_key("odm-trainer") && !arrows("trainer").contains_key("gst-plugin-odm"));
}
