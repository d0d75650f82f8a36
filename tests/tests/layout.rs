// SPDX-License-Identifier: MIT OR Apache-2.0
//! The crate arrows of docs/layout.md are the manifests' own: each workspace crate depends on exactly the workspace
//! crates the table says (dependencies, dev-dependencies marked "tests only"), and nothing points upward. Inside the
//! plugin and core, files import one way too: no file imports its way back to itself (the rule is in imports/), and
//! the plugin's engine names no element.

use std::collections::BTreeMap;
use std::path::Path;

use odm_e2e::repo;

mod imports;

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

/// Every import circle among the files of a crate's `src/`, as sentences.
fn circles_in(src: &Path) -> Vec<String> {
    let g = imports::graph(src);
    let mut found: Vec<String> = imports::circles(&g).iter().map(|c| imports::describe(&g, c)).collect();
    found.sort();
    found
}

#[test]
fn no_file_of_the_plugin_or_core_imports_its_way_back_to_itself() {
    for folder in ["plugin/src", "core/src"] {
        let found = circles_in(&repo().join(folder));
        assert!(found.is_empty(), "import circles in {folder}/:\n{}", found.join("\n"));
    }
}

/// The trainer too: its rooms (synth, data, train, eval, export, report, ...) and the command line (`cli/`, the
/// binary's) import one way, file by file.
#[test]
fn no_file_of_the_trainer_imports_its_way_back_to_itself() {
    let found = circles_in(&repo().join("trainer/src"));
    assert!(found.is_empty(), "import circles in trainer/src/:\n{}", found.join("\n"));
}

#[test]
fn the_engine_names_no_element() {
    let src = repo().join("plugin/src");
    let g = imports::graph(&src);
    // An element's folder holds its imp.rs.
    let elements: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("imp.rs").is_file())
        .map(|p| format!("{}/", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(elements.iter().any(|e| e == "classify/") && elements.iter().any(|e| e == "detect/"), "{elements:?}");
    for (file, edges) in g.iter().filter(|(f, _)| f.starts_with("engine/")) {
        if let Some((to, why)) = edges.iter().find(|(to, _)| elements.iter().any(|e| to.starts_with(e.as_str()))) {
            panic!(
                "plugin/src/{file} line {} names the element file {to} ({}): the engine serves elements",
                why.line, why.path
            );
        }
    }
}

/// The reader on a small crate written here: the circles it must find and the paths it must not count.
#[test]
fn the_import_reader_finds_circles_and_keeps_to_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod el;\npub mod engine;\npub use other_crate as runtime;\n");
    // An element: registration both ways, a facade re-export, a child that uses its parent's item.
    write(
        "el/mod.rs",
        r#"mod imp;
mod state;
pub mod part;
pub use part::Thing;
pub struct Mode;
glib::wrapper! { pub struct El(ObjectSubclass<imp::El>); }
"#,
    );
    write("el/part.rs", "use super::Mode;\npub struct Thing(Mode);\n");
    write(
        "el/imp.rs",
        r##"use super::state::State;
impl ObjectSubclass for El { type Type = super::El; }
// crate::engine::b::B in a comment /* super::part::Thing */
fn f() { let s = "super::part::Thing \" crate::engine::b::B"; let c = 'x'; let q = '\''; let b = '\\'; }
const R: &str = r#"crate::engine::b::B " super::part::Thing"#;
"##,
    );
    // A circle through a path in code, and the facade followed to the file that defines the item.
    write(
        "el/state.rs",
        r#"pub struct State;
fn g() { let _ = super::imp::helper(); let _ = crate::el::Thing; let _ = crate::runtime::x; }
#[cfg(test)]
mod tests {
    use super::*;
}
"#,
    );
    // Two files of the engine reaching each other, one through a group with `self`.
    write("engine/mod.rs", "pub mod a;\npub mod b;\npub enum Error {}\n");
    write("engine/a.rs", "use super::{b::{self, B}, Error};\npub struct A;\n");
    write("engine/b.rs", "pub struct B(crate::engine::a::A);\n");
    let g = imports::graph(dir.path());
    let edges = |f: &str| g[f].keys().cloned().collect::<Vec<_>>();
    assert_eq!(edges("el/mod.rs"), Vec::<String>::new(), "registration and the facade are not imports");
    assert_eq!(edges("el/imp.rs"), ["el/state.rs"], "comments, strings and `type Type` are not imports");
    assert_eq!(edges("el/state.rs"), ["el/imp.rs", "el/part.rs", "lib.rs"], "el::Thing is part.rs's");
    assert_eq!(edges("el/part.rs"), ["el/mod.rs"]);
    assert_eq!(edges("engine/a.rs"), ["engine/b.rs", "engine/mod.rs"]);
    let found = circles_in(dir.path());
    assert_eq!(
        found,
        [
            "el/imp.rs -> el/state.rs (line 1: super::state::State) -> el/imp.rs (line 2: super::imp::helper)",
            "engine/a.rs -> engine/b.rs (line 1: super::b) -> engine/a.rs (line 1: crate::engine::a::A)",
        ]
    );
}
