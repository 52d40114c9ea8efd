//! The README and the book hold together: every relative link names a file that exists (and a
//! heading of it, where it names one), and every chapter is in the book's summary. `mdbook
//! build docs` (CI) checks that the book builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Markdown files of the book and the README.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    let mut found = vec![repo().join("README.md")];
    walk(&repo().join("docs/src"), &mut found);
    found.sort();
    found
}

/// The targets of inline links and images, `](target)`, outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

/// The anchor mdBook and GitHub give a heading: lowercase, spaces to dashes, and only letters,
/// digits, dashes and underscores kept.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|h| slug(h.trim_start_matches('#'))).collect()
}

#[test]
fn every_relative_link_names_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
            let target = if path.is_empty() { document.clone() } else { document.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", document.display()));
                continue;
            }
            if let Some(anchor) = anchor
                && target.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&target).unwrap()).contains(anchor)
            {
                broken.push(format!("{}: {link}: no such heading", document.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = std::fs::read_to_string(repo().join("docs/src/SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    let src = repo().join("docs/src");
    for document in documents().into_iter().filter(|d| d.starts_with(&src)) {
        let relative = document.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if relative != "SUMMARY.md" {
            assert!(listed.contains(&relative), "{relative} is not in docs/src/SUMMARY.md");
        }
    }
}

/// The README stays a short entry; the guide lives in the book.
#[test]
fn the_readme_fits_a_screenful_or_two() {
    let lines = std::fs::read_to_string(repo().join("README.md")).unwrap().lines().count();
    assert!(lines <= 200, "README.md has {lines} lines; move what is more into docs/");
}

#[test]
fn slugs_are_mdbooks() {
    assert_eq!(slug("Who may become the VM's node"), "who-may-become-the-vms-node");
    assert_eq!(slug("VM-nodes: the VM, its join and its network"), "vm-nodes-the-vm-its-join-and-its-network");
}

fn number_word(n: usize) -> String {
    const WORDS: [&str; 11] = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    WORDS.get(n).map_or_else(|| n.to_string(), |w| w.to_string())
}

/// The figures the README and the book quote from the reference layout's plan are the plan's
/// own, computed here: the README once said six hosts where `plan` said seven, and later seven
/// where it said six.
#[test]
fn the_docs_quote_the_reference_plan_as_it_is() {
    let (plan, more) = xtask::reference_plan(&repo());
    let more = more.expect("host-1 is a host of the reference layout");
    let add = more.add.expect("some number of hosts places every VM but those none takes");
    let total = plan.hosts.len() + add;
    let others = plan.vms.len() - more.never_fit.len();
    let shortfall = std::fs::read_to_string(repo().join(xtask::REFERENCE_PLAN)).unwrap();
    let shortfall_cores = shortfall
        .lines()
        .find_map(|line| line.strip_prefix("shortfall:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the plan has a shortfall line")
        .to_string();
    let read = |path: &str| {
        std::fs::read_to_string(repo().join(path)).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut quotes = vec![
        ("README.md", format!("**{add}** more hosts of that shape ({total} in all)")),
        ("docs/src/guide/planning.md", format!("The other {others} VMs need {} hosts", number_word(total))),
        ("docs/src/guide/planning.md", format!("short by {shortfall_cores} cores")),
        ("docs/src/guide/maintenance.md", format!("With the {} hosts the layout needs", number_word(total))),
    ];
    for vm in &more.never_fit {
        quotes.push(("README.md", format!("no number of hosts of that shape takes `{}`", vm.name())));
    }
    for (path, quote) in quotes {
        assert!(read(path).contains(&quote), "{path} should say {quote:?}, as the plan does");
    }
}
