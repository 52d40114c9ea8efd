//! The house has no import circle (issue 24): within each crate, no two modules use each other,
//! directly or around a longer loop. A module's use of its ancestors (the facade that re-exports
//! what its children define) does not count; `#[cfg(test)]` code and comments do not either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; `` for `src/lib.rs` and `src/main.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| !matches!(*p, "mod" | "lib" | "main")).collect();
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        if entry.is_dir() {
            rust_files(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
}

/// The code of a file: what comes before its tests, without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The paths a reference starting at `text` names: `super::a::b`, or each of
/// `super::{a, b::{c, d}}` (a use tree) as `super::a`, `super::b::c`, `super::b::d`.
fn paths(text: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let prefix: String = text.chars().take_while(|c| ident(*c)).collect();
    let rest = &text[prefix.len()..];
    if !prefix.ends_with("::") || !rest.starts_with('{') {
        return vec![prefix];
    }
    let mut depth = 0;
    let mut end = rest.len();
    for (at, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = at;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &rest[1..end];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty() && *item != "self")
        .flat_map(|item| paths(&format!("{prefix}{item}")))
        .collect()
}

/// The modules each module of the crate at `src` refers to (`crate::x`, `super::x`).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, String> =
        files.iter().map(|f| (module_of(src, f), code(&std::fs::read_to_string(f).unwrap()))).collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &modules {
        let parent: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        let mut targets = BTreeSet::new();
        let paths =
            text.match_indices("crate::").chain(text.match_indices("super::")).flat_map(|(at, _)| paths(&text[at..]));
        for path in paths {
            let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            let mut base: Vec<&str> = Vec::new();
            if parts.first() == Some(&"crate") {
                parts.remove(0);
            } else {
                base = parent[..parent.len().saturating_sub(1)].to_vec();
                while parts.first() == Some(&"super") {
                    parts.remove(0);
                }
            }
            let full: Vec<&str> = base.into_iter().chain(parts).collect();
            let target = (1..=full.len()).rev().map(|k| full[..k].join("::")).find(|m| modules.contains_key(m));
            if let Some(target) = target {
                let ancestor = *module == target || module.starts_with(&format!("{target}::"));
                if !ancestor {
                    targets.insert(target);
                }
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A loop through `start`, if there is one.
fn loop_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path.iter().cloned().chain([start.to_string()]).collect());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), path.iter().cloned().chain([next.clone()]).collect()));
            }
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_circle() {
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(repo().join("crates")).unwrap().map(|e| e.unwrap().path()).collect();
    crates.extend(["xtask", "e2e/apiserver"].map(|c| repo().join(c)));
    let mut circles = Vec::new();
    for krate in crates {
        let graph = graph(&krate.join("src"));
        for module in graph.keys() {
            if let Some(circle) = loop_through(&graph, module) {
                circles.push(format!("{}: {}", krate.display(), circle.join(" -> ")));
            }
        }
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn use_trees_name_each_of_their_paths() {
    assert_eq!(
        paths("super::{Context, moves::MOVING, a::{b, c}};"),
        ["super::Context", "super::moves::MOVING", "super::a::b", "super::a::c"]
    );
    assert_eq!(paths("crate::per_object::PerObject<V>"), ["crate::per_object::PerObject"]);
}

#[test]
fn a_circle_is_found() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(loop_through(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().clear();
    assert_eq!(loop_through(&graph, "a"), None);
}
