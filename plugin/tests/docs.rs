// SPDX-License-Identifier: MIT OR Apache-2.0
//! docs/elements.md's property tables are generated from the elements' own ParamSpecs (name, type, range, default,
//! when it may change, description), as gst-plugins-rs keeps its documentation true: this test fails when a table
//! differs from what the code declares, and when a property, range or default differs from what `gst-inspect-1.0`
//! reports of the built plugin. After a deliberate change: `ODM_BLESS=1 cargo test -p gst-plugin-odm --test docs`
//! rewrites the tables in place.

mod common;

use std::path::{Path, PathBuf};

use gst::glib;
use gst::prelude::*;

const ELEMENTS: &[&str] =
    &["odmclassify", "odmdetect", "odmtrack", "odmroireplay", "odmproposals", "odmoverlay", "odmexport", "odmpublish"];

fn page() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/elements.md")
}

fn begin(element: &str) -> String {
    format!("<!-- properties of {element}: generated from its ParamSpecs, checked by plugin/tests/docs.rs -->")
}

const END: &str = "<!-- end of properties -->";

/// The properties an element declares itself (not those of GstObject or its base classes).
fn own_properties(el: &gst::Element) -> Vec<glib::ParamSpec> {
    let ty = el.type_();
    el.list_properties().iter().filter(|p| p.owner_type() == ty).cloned().collect()
}

/// Type, range and default of a property as the table shows them.
fn describe(p: &glib::ParamSpec) -> (String, String, String) {
    let num = |lo: String, hi: String| format!("{lo} – {hi}");
    if let Some(p) = p.downcast_ref::<glib::ParamSpecUInt>() {
        return ("uint".into(), num(p.minimum().to_string(), p.maximum().to_string()), p.default_value().to_string());
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecInt>() {
        return ("int".into(), num(p.minimum().to_string(), p.maximum().to_string()), p.default_value().to_string());
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecUInt64>() {
        return ("uint64".into(), num(p.minimum().to_string(), p.maximum().to_string()), p.default_value().to_string());
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecInt64>() {
        return ("int64".into(), num(p.minimum().to_string(), p.maximum().to_string()), p.default_value().to_string());
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecDouble>() {
        let f = |v: f64| {
            if v == f64::MAX {
                "max".to_owned()
            } else if v == -f64::MAX {
                "-max".to_owned()
            } else {
                v.to_string()
            }
        };
        return ("double".into(), num(f(p.minimum()), f(p.maximum())), f(p.default_value()));
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecBoolean>() {
        return ("bool".into(), String::new(), p.default_value().to_string());
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecString>() {
        let d =
            p.default_value()
                .map_or("(none)".to_owned(), |s| if s.is_empty() { "\"\"".into() } else { format!("`{s}`") });
        return ("string".into(), String::new(), d);
    }
    if let Some(p) = p.downcast_ref::<glib::ParamSpecEnum>() {
        let class = p.enum_class();
        let nicks: Vec<String> = class.values().iter().map(|v| format!("`{}`", v.nick())).collect();
        let d = class.value(p.default_value_as_i32()).map_or(String::new(), |v| format!("`{}`", v.nick()));
        return ("enum".into(), nicks.join(", "), d);
    }
    (p.value_type().name().to_owned(), String::new(), String::new())
}

/// When a property may be set: odm's rule (`plugin/src/props.rs`).
fn changes(p: &glib::ParamSpec) -> &'static str {
    let f = p.flags();
    if !f.contains(glib::ParamFlags::WRITABLE) {
        "read-only"
    } else if f.contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
        "any state"
    } else {
        "NULL or READY"
    }
}

fn table(element: &str) -> String {
    let el = gst::ElementFactory::make(element).build().unwrap_or_else(|e| panic!("{element}: {e}"));
    let mut t = String::from("| property | type | range | default | may change | what |\n|---|---|---|---|---|---|\n");
    for p in own_properties(&el) {
        let (ty, range, default) = describe(&p);
        let blurb = p.blurb().unwrap_or_default().replace('|', "\\|").replace('\n', " ");
        t.push_str(&format!("| `{}` | {ty} | {range} | {default} | {} | {blurb} |\n", p.name(), changes(&p)));
    }
    t
}

/// The page with each element's table put between its markers.
fn generated(text: &str) -> Result<String, String> {
    let mut out = text.to_owned();
    for element in ELEMENTS {
        let b = begin(element);
        let start = out.find(&b).ok_or_else(|| format!("docs/elements.md has no line `{b}`"))? + b.len();
        let end = start + out[start..].find(END).ok_or_else(|| format!("{element}: no `{END}` after its table"))?;
        out.replace_range(start..end, &format!("\n{}", table(element)));
    }
    Ok(out)
}

#[test]
fn the_property_tables_are_the_elements_paramspecs() {
    common::init();
    let text = std::fs::read_to_string(page()).unwrap();
    let want = generated(&text).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("ODM_BLESS").is_some() {
        std::fs::write(page(), &want).unwrap();
        return;
    }
    if want != text {
        let first = want.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "docs/elements.md's property tables differ from the elements' ParamSpecs (first at line {}):\n  page: {}\n  code: {}\n\
             regenerate with ODM_BLESS=1 cargo test -p gst-plugin-odm --test docs",
            first + 1,
            text.lines().nth(first).unwrap_or(""),
            want.lines().nth(first).unwrap_or("")
        );
    }
}

/// The built plugin's folder (target/<profile>), beside this test's executable.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_owned();
    assert!(
        dir.join("libgstodm.so").exists(),
        "{}: no libgstodm.so; cargo build -p gst-plugin-odm first",
        dir.display()
    );
    dir
}

#[test]
fn gst_inspect_reports_the_same_properties_ranges_and_defaults() {
    common::init();
    let registry = tempfile::NamedTempFile::new().unwrap();
    for element in ELEMENTS {
        let out = std::process::Command::new("gst-inspect-1.0")
            .arg(element)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_REGISTRY", registry.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "gst-inspect-1.0 {element}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let el = gst::ElementFactory::make(element).build().unwrap();
        for p in own_properties(&el) {
            // gst-inspect prints "  name  : blurb", then flags, then "Type. Range: a - b Default: d".
            let at = text
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("{} ", p.name())) && l.contains(':'))
                .unwrap_or_else(|| panic!("gst-inspect-1.0 {element} lists no property {}", p.name()));
            // The property's own lines: its name line, then the lines indented deeper than property names.
            let lines: Vec<&str> = text.lines().skip(at).collect();
            let own = 1 + lines[1..].iter().take_while(|l| l.starts_with("      ")).count();
            let block: String = lines[..own].join(" ");
            let (_, range, _) = describe(&p);
            if let Some(p) = p.downcast_ref::<glib::ParamSpecUInt>() {
                let want = format!("Range: {} - {} Default: {}", p.minimum(), p.maximum(), p.default_value());
                assert!(block.contains(&want), "{element}.{}: gst-inspect says {block}; the table {range}", p.name());
            } else if let Some(p) = p.downcast_ref::<glib::ParamSpecInt>() {
                let want = format!("Range: {} - {} Default: {}", p.minimum(), p.maximum(), p.default_value());
                assert!(block.contains(&want), "{element}.{}: gst-inspect says {block}; the table {range}", p.name());
            } else if let Some(p) = p.downcast_ref::<glib::ParamSpecBoolean>() {
                let want = format!("Default: {}", p.default_value());
                assert!(block.contains(&want), "{element}.{}: gst-inspect says {block}", p.name());
            }
            let writable = block.contains("writable");
            assert_eq!(writable, changes(&p) != "read-only", "{element}.{}: {block}", p.name());
            if writable {
                let playing = block.contains("changeable in NULL, READY, PAUSED or PLAYING state");
                assert_eq!(playing, changes(&p) == "any state", "{element}.{}: {block}", p.name());
            }
        }
    }
}
