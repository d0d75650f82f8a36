// SPDX-License-Identifier: MIT OR Apache-2.0
//! The file-level import graph of a crate's `src/` folder.
//!
//! The rule: file A imports file B when a path written in A names an item defined in B. The paths read are those
//! that start with `crate::`, `super::`, `self::` or with one of A's own child modules (`mod x;` in A), in `use`
//! declarations (groups, `self`, renames and globs expanded) and in code; comments and string literals are skipped,
//! and so are other crates' paths. A path is resolved through the module files (`a.rs`, `a/mod.rs`, `a/b.rs`) as
//! far as they go; the rest names an item of the file reached, and when that file's name for it is itself a `use`
//! of another module's item, the path goes on to that item's file. Not imports: declaring a child (`mod x;`), a
//! module's root re-exporting its own children's items (`pub use x::Item`, its public face: whoever names the item
//! through it imports the child), and registering an element (the `imp::…` inside `glib::wrapper!`, and the
//! subclass's `type Type = super::…`), which GObject subclassing makes both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One edge: the importing line and the path as written.
#[derive(Debug, Clone)]
pub struct Why {
    pub line: usize,
    pub path: String,
}

/// Files (relative to the crate's `src/`) and, for each, the files it imports with the first path that does.
pub type Graph = BTreeMap<String, BTreeMap<String, Why>>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Colon2,
    Punct(char),
}

/// A `use` leaf: the path, the name it binds (none for a glob), whether it is `pub`, its line, its inline scope.
#[derive(Debug, Clone)]
struct Use {
    path: Vec<String>,
    name: Option<String>,
    public: bool,
    line: usize,
    scope: Vec<String>,
}

#[derive(Debug, Default)]
struct File {
    module: Vec<String>,
    children: BTreeSet<String>,
    uses: Vec<Use>,
    /// Paths in code: inline scope, segments, line.
    paths: Vec<(Vec<String>, Vec<String>, usize)>,
}

/// The source with comments, strings and character literals blanked (line breaks kept).
fn strip(src: &str) -> Vec<char> {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in out.iter_mut().take(to.min(c.len())).skip(from) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..].iter().position(|&ch| ch == '\n').map_or(c.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some((open, hashes)) = raw_string_at(&c, i).filter(|_| !prev_ident) {
            // r"…", r#"…"#, br"…": ends at a quote followed by as many hashes.
            let mut j = open + 1;
            while j < c.len()
                && !(c[j] == '"' && c[j + 1..].iter().take(hashes).filter(|&&ch| ch == '#').count() == hashes)
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}'); else a lifetime or label, kept.
            if c.get(i + 1) == Some(&'\\') {
                // The escaped character first: '\'' and '\\' end at the quote after it.
                let end =
                    c.get(i + 3..).and_then(|r| r.iter().position(|&ch| ch == '\'')).map_or(c.len(), |p| i + 3 + p);
                blank(&mut out, i, end + 1);
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                blank(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Where a raw string starting at `i` opens (its quote) and how many hashes it has, if one starts there.
fn raw_string_at(c: &[char], i: usize) -> Option<(usize, usize)> {
    let k = match (c.get(i), c.get(i + 1)) {
        (Some('r'), _) => i + 1,
        (Some('b'), Some('r')) => i + 2,
        _ => return None,
    };
    let hashes = c[k..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(k + hashes) == Some(&'"')).then_some((k + hashes, hashes))
}

fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c = strip(src);
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Colon2, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is(t: Option<&(Tok, usize)>, want: &Tok) -> bool {
    t.is_some_and(|(t, _)| t == want)
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The index after the group that opens at `i` (`{`, `(` or `[`).
fn skip_group(t: &[(Tok, usize)], i: usize) -> usize {
    let mut depth = 0;
    for (j, (tok, _)) in t.iter().enumerate().skip(i) {
        match tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// The leaves of a use tree starting at `i` (after `use`), each with `prefix` before it; returns where it ends.
fn use_tree(
    t: &[(Tok, usize)],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match t.get(i).map(|x| &x.0) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if is(t.get(i), &Tok::Colon2) {
                    i += 1;
                    continue;
                }
                if ident(t.get(i)) == Some("as") {
                    let alias = ident(t.get(i + 1)).map(str::to_owned);
                    i += 2;
                    let leaf = if path.last().map(String::as_str) == Some("self") {
                        path.pop();
                        path.clone()
                    } else {
                        path.clone()
                    };
                    out.push((leaf, alias.filter(|a| a != "_")));
                    return i;
                }
                let mut leaf = path.clone();
                if leaf.last().map(String::as_str) == Some("self") && leaf.len() > 1 {
                    leaf.pop();
                }
                let name = leaf.last().cloned();
                out.push((leaf, name));
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while !is(t.get(i), &Tok::Punct('}')) && i < t.len() {
                    i = use_tree(t, i, &path, out);
                    if is(t.get(i), &Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            // `use ::x` (another crate) or something this reader does not know: nothing.
            _ => return i + 1,
        }
    }
}

fn parse(src: &str, module: Vec<String>) -> File {
    let t = tokens(src);
    let mut f = File { module, ..File::default() };
    // Inline modules open now, each with the brace depth inside it.
    let mut scope: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < t.len() {
        let (tok, line) = (&t[i].0, t[i].1);
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scope.last().is_some_and(|(_, d)| *d == depth) {
                    scope.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "mod" && ident(t.get(i + 1)).is_some() => {
                let name = ident(t.get(i + 1)).unwrap_or_default().to_owned();
                if is(t.get(i + 2), &Tok::Punct(';')) {
                    if scope.is_empty() {
                        f.children.insert(name);
                    }
                    i += 3;
                } else if is(t.get(i + 2), &Tok::Punct('{')) {
                    depth += 1;
                    scope.push((name, depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(k) if k == "use" => {
                let public = match t.get(i.wrapping_sub(1)).map(|x| &x.0) {
                    Some(Tok::Ident(p)) => p == "pub",
                    Some(Tok::Punct(')')) => {
                        let open = (0..i).rev().find(|&j| is(t.get(j), &Tok::Punct('(')));
                        open.is_some_and(|j| ident(t.get(j.wrapping_sub(1))) == Some("pub"))
                    }
                    _ => false,
                };
                let mut leaves = Vec::new();
                let end = use_tree(&t, i + 1, &[], &mut leaves);
                let inline: Vec<String> = scope.iter().map(|(n, _)| n.clone()).collect();
                for (path, name) in leaves {
                    f.uses.push(Use { path, name, public, line, scope: inline.clone() });
                }
                i = end;
            }
            // Registering an element: `glib::wrapper! { … imp::X … }` and `type Type = super::X;`.
            Tok::Ident(k) if k == "wrapper" && is(t.get(i + 1), &Tok::Punct('!')) => i = skip_group(&t, i + 2),
            Tok::Ident(k)
                if k == "type" && ident(t.get(i + 1)) == Some("Type") && is(t.get(i + 2), &Tok::Punct('=')) =>
            {
                i = (i..t.len()).find(|&j| is(t.get(j), &Tok::Punct(';'))).map_or(t.len(), |j| j + 1);
            }
            Tok::Ident(k)
                if is(t.get(i + 1), &Tok::Colon2)
                    && !is(t.get(i.wrapping_sub(1)), &Tok::Colon2)
                    && !is(t.get(i.wrapping_sub(1)), &Tok::Punct('$'))
                    && (matches!(k.as_str(), "crate" | "super" | "self")
                        || (scope.is_empty() && f.children.contains(k))) =>
            {
                let mut segs = vec![k.clone()];
                let mut j = i + 1;
                while is(t.get(j), &Tok::Colon2) {
                    match ident(t.get(j + 1)) {
                        Some(s) => {
                            segs.push(s.to_owned());
                            j += 2;
                        }
                        None => break,
                    }
                }
                f.paths.push((scope.iter().map(|(n, _)| n.clone()).collect(), segs, line));
                i = j;
            }
            _ => i += 1,
        }
    }
    f
}

/// Every `.rs` file under `dir`, relative to it.
fn files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    for name in entries {
        let p = rel.join(&name);
        if dir.join(&p).is_dir() {
            files(dir, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `lib.rs` is the crate, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = segs.pop()?;
    match last.as_str() {
        "lib.rs" | "main.rs" if segs.is_empty() => {}
        "mod.rs" => {}
        _ => segs.push(last.strip_suffix(".rs")?.to_owned()),
    }
    Some(segs)
}

struct Crate {
    modules: BTreeMap<Vec<String>, String>,
    files: BTreeMap<String, File>,
}

impl Crate {
    /// The absolute module path a path written in `file` (inside inline `scope`) starts from; `None` for another
    /// crate's.
    fn absolute(&self, file: &File, scope: &[String], segs: &[String]) -> Option<Vec<String>> {
        let mut cur: Vec<String> = file.module.iter().chain(scope).cloned().collect();
        let first = segs.first()?.as_str();
        let mut rest = &segs[1..];
        match first {
            "crate" => cur.clear(),
            "self" => {}
            "super" => {
                cur.pop();
                while rest.first().map(String::as_str) == Some("super") {
                    cur.pop();
                    rest = &rest[1..];
                }
            }
            child if scope.is_empty() && file.children.contains(child) => cur.push(child.to_owned()),
            _ => return None,
        }
        cur.extend(rest.iter().cloned());
        Some(cur)
    }

    /// The file that defines what an absolute path names.
    fn resolve(&self, abs: &[String], hops: usize) -> Option<String> {
        let mut n = 0;
        while n < abs.len() && self.modules.contains_key(&abs[..=n]) {
            n += 1;
        }
        let rel = self.modules.get(&abs[..n])?.clone();
        let Some(name) = abs.get(n) else { return Some(rel) };
        if hops > 8 {
            return Some(rel);
        }
        // The file's name for it may be a `use` of another file's item: follow it there.
        let file = &self.files[&rel];
        let bound = file.uses.iter().find(|u| u.scope.is_empty() && u.name.as_deref() == Some(name.as_str()));
        if let Some(target) = bound.and_then(|u| self.absolute(file, &[], &u.path)) {
            let mut next = target;
            next.extend(abs[n + 1..].iter().cloned());
            if let Some(found) = self.resolve(&next, hops + 1) {
                return Some(found);
            }
        }
        Some(rel)
    }
}

/// The import graph of the crate whose sources are under `src`.
pub fn graph(src: &Path) -> Graph {
    let mut rels = Vec::new();
    files(src, Path::new(""), &mut rels);
    let mut c = Crate { modules: BTreeMap::new(), files: BTreeMap::new() };
    for rel in rels {
        let Some(module) = module_of(&rel) else { continue };
        let text = std::fs::read_to_string(src.join(&rel)).unwrap();
        let key = rel.to_string_lossy().into_owned();
        c.modules.insert(module.clone(), key.clone());
        c.files.insert(key, parse(&text, module));
    }
    let mut g = Graph::new();
    for (rel, file) in &c.files {
        let edges = g.entry(rel.clone()).or_default();
        let mut add = |scope: &[String], path: &[String], line: usize, facade: bool| {
            let Some(abs) = c.absolute(file, scope, path) else { return };
            // A root's `pub use child::Item`: its public face, not an import.
            let n = file.module.len();
            if facade && abs.len() > n && abs.starts_with(&file.module) && file.children.contains(&abs[n]) {
                return;
            }
            if let Some(to) = c.resolve(&abs, 0).filter(|to| to != rel) {
                edges.entry(to).or_insert(Why { line, path: path.join("::") });
            }
        };
        for u in &file.uses {
            add(&u.scope, &u.path, u.line, u.public && u.scope.is_empty());
        }
        for (scope, path, line) in &file.paths {
            add(scope, path, *line, false);
        }
    }
    g
}

/// Every import circle of the graph, each as its files in order (the first again at the end).
pub fn circles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components; a circle is found in each component of two or more files.
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        comps: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.comps.push(comp);
        }
    }
    let mut t =
        T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], on: BTreeSet::new(), comps: vec![] };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    let mut out = Vec::new();
    for comp in t.comps.iter().filter(|c| c.len() > 1) {
        let inside: BTreeSet<&str> = comp.iter().copied().collect();
        let start = *inside.iter().next().unwrap();
        // The shortest way back to `start` inside the component (breadth first).
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        while let Some(v) = queue.pop_front() {
            for w in g[v].keys().map(String::as_str).filter(|w| inside.contains(w)) {
                if w == start {
                    end = Some(v);
                    queue.clear();
                    break;
                }
                if !prev.contains_key(w) {
                    prev.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = vec![start.to_owned()];
        let mut v = end.unwrap();
        while v != start {
            path.push(v.to_owned());
            v = prev[v];
        }
        path.push(start.to_owned());
        let n = path.len();
        path[1..n - 1].reverse();
        out.push(path);
    }
    out
}

/// A circle as a sentence: each file, and the line and path by which it imports the next.
pub fn describe(g: &Graph, circle: &[String]) -> String {
    let mut s = circle[0].clone();
    for w in circle.windows(2) {
        let why = &g[&w[0]][&w[1]];
        s += &format!(" -> {} (line {}: {})", w[1], why.line, why.path);
    }
    s
}
