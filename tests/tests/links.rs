// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every link in the repository resolves inside it: relative Markdown links in `*.md` files and in Rust doc comments
//! point at files or folders of the checkout, and nothing points outside it: not into the project's shared folder beside
//! the checkout, which a clone does not have.

use std::path::{Path, PathBuf};

/// The shared folder beside the checkout (spelled in two parts so that this file does not point there itself).
const OUTSIDE: &str = concat!("..", "/shared/");

/// Files of the checkout worth reading (not build output, caches or downloads).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let skip = ["target", ".deps", "build", "out", ".git", "node_modules", "__pycache__", ".venv"];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !skip.contains(&name.as_str()) && !name.starts_with('.') {
                files(&p, out);
            }
        } else if [".md", ".rs", ".py", ".sh", ".toml", ".build"].iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// The targets of `[text](target)` links in `text`.
fn links(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let t = &rest[..end];
            if !t.is_empty() && !t.contains(char::is_whitespace) {
                v.push(t.to_owned());
            }
        }
    }
    v
}

#[test]
fn every_relative_link_resolves_inside_the_checkout() {
    let root = odm_e2e::repo().canonicalize().unwrap();
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(all.iter().any(|p| p.ends_with("README.md")), "the walk found the README");
    let mut broken = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if text.contains(OUTSIDE) {
            broken.push(format!("{rel}: points into {OUTSIDE}, which a clone does not have"));
        }
        let md = rel.ends_with(".md");
        for t in links(&text) {
            if t.starts_with("http://") || t.starts_with("https://") || t.starts_with("mailto:") || t.starts_with('#') {
                continue;
            }
            // In Rust files only doc links that name a file (intra-doc links like [`Foo`](crate::x) are not paths).
            let path = t.split('#').next().unwrap_or_default();
            if !(md || path.contains('/') || path.ends_with(".md")) || path.contains("::") {
                continue;
            }
            let target = f.parent().unwrap().join(path);
            match target.canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(p) => broken.push(format!("{rel}: {t} leaves the checkout ({})", p.display())),
                Err(_) => broken.push(format!("{rel}: {t} does not exist")),
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
