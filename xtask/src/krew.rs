//! `kubectl catalyst` as a krew plugin: the release archives, the plugin manifest that lists
//! them, and krew's own rules for both, so that a manifest this project ships is one krew takes.
//!
//! The rules are krew v0.4.5's (the version krew-index's CI validates with):
//! `internal/index/validation/validate.go` (`ValidatePlugin`, `validatePlatform`,
//! `validateSelector`), `cmd/validate-krew-manifest/main.go` (file name, supported platforms,
//! overlapping selectors, a licence file) and `internal/download/downloader.go` (entries of an
//! archive). krew's validator is Go with no vendored dependencies, which no registry this
//! project's CI reaches carries, so the rules are checked here; the messages are krew's.
//!
//! Archives are made with the system's `tar` and hashed with `sha256sum` (GNU coreutils), as a
//! release job would, rather than with two more crates.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's name: `kubectl catalyst` runs `kubectl-catalyst`.
pub const PLUGIN: &str = "catalyst";
const BINARY: &str = "kubectl-catalyst";
const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";

/// The os/arch pairs krew installs for (`allPlatforms` in validate-krew-manifest's main.go).
const SUPPORTED: [(&str, &str); 11] = [
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// The Go os and arch of a Rust target triple (krew selects by Go's names).
pub fn platform(target: &str) -> Option<(&'static str, &'static str)> {
    let arch = match target.split('-').next()? {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i586" => "386",
        "armv7" | "arm" => "arm",
        "powerpc64le" => "ppc64le",
        _ => return None,
    };
    let os = if target.contains("-linux-") {
        "linux"
    } else if target.contains("-apple-darwin") {
        "darwin"
    } else if target.contains("-windows-") {
        "windows"
    } else {
        return None;
    };
    SUPPORTED.iter().find(|(o, a)| *o == os && *a == arch).map(|(o, a)| (*o, *a))
}

/// A release archive: the target it is for, where it is, its sha256.
#[derive(Debug, Clone)]
pub struct Archive {
    pub target: String,
    pub path: PathBuf,
    pub sha256: String,
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

/// `kubectl-catalyst-VERSION-TARGET.tar.gz` in `out`, holding the binary and `LICENSE` at its
/// top level, as krew extracts and links them.
pub fn package(binary: &Path, license: &Path, version: &str, target: &str, out: &Path) -> Result<Archive, String> {
    let (os, _) = platform(target).ok_or_else(|| format!("{target}: krew installs for none of its os/arch"))?;
    let staging = out.join(format!("staging-{target}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let name = if os == "windows" { format!("{BINARY}.exe") } else { BINARY.to_string() };
    std::fs::copy(binary, staging.join(&name)).map_err(|e| format!("{}: {e}", binary.display()))?;
    std::fs::copy(license, staging.join("LICENSE")).map_err(|e| format!("{}: {e}", license.display()))?;
    let path = out.join(format!("{BINARY}-{version}-{target}.tar.gz"));
    run(Command::new("tar").arg("-czf").arg(&path).arg("-C").arg(&staging).args([name.as_str(), "LICENSE"]))?;
    std::fs::remove_dir_all(&staging).map_err(|e| e.to_string())?;
    let sum = run(Command::new("sha256sum").arg(&path))?;
    let sha256 = sum.split_whitespace().next().unwrap_or_default().to_string();
    Ok(Archive { target: target.to_string(), path, sha256 })
}

/// The plugin manifest (`catalyst.yaml`) for `archives`, published under `base_url`.
pub fn manifest(version: &str, homepage: &str, base_url: &str, archives: &[Archive]) -> String {
    let platforms: Vec<Value> = archives
        .iter()
        .filter_map(|archive| {
            let (os, arch) = platform(&archive.target)?;
            let file = archive.path.file_name()?.to_string_lossy().into_owned();
            let bin = if os == "windows" { format!("{BINARY}.exe") } else { BINARY.to_string() };
            let platform = serde_json::json!({
                "selector": {"matchLabels": {"os": os, "arch": arch}},
                "uri": format!("{}/{file}", base_url.trim_end_matches('/')),
                "sha256": archive.sha256,
                "bin": bin,
            });
            Some(platform)
        })
        .collect();
    let plugin = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "Plugin",
        "metadata": {"name": PLUGIN},
        "spec": {
            "version": version,
            "homepage": homepage,
            "shortDescription": "Plan, validate, render and import Catalyst VM layouts",
            "description": "Catalyst places dedicated-core VMs on KubeVirt hosts and pinned containers in them.\n\
                            This plugin plans a layout offline (plan, validate, render), imports what runs today\n\
                            (docker-compose files, OpenStack flavors and servers), shows the live layout (status)\n\
                            and drains hosts (drain, undrain).\n",
            "platforms": platforms,
        },
    });
    catalyst_core::yaml::to_string(&plugin).unwrap_or_default()
}

/// krew's checks of a manifest named `file_name`: every message krew would print.
pub fn validate(file_name: &str, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(expected) = file_name.strip_suffix(".yaml") else {
        let extension =
            Path::new(file_name).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        return vec![format!("expected manifest extension \".yaml\" but found {extension:?}")];
    };
    let plugin: Value = match catalyst_core::yaml::from_str(text) {
        Ok(plugin) => plugin,
        Err(error) => return vec![format!("failed to read plugin file: {error}")],
    };
    let field = |path: &[&str]| path.iter().try_fold(&plugin, |value, key| value.get(*key));
    let string = |path: &[&str]| field(path).and_then(Value::as_str).unwrap_or_default().to_string();
    let api_version = string(&["apiVersion"]);
    if api_version != API_VERSION {
        errors.push(format!(
            "plugin manifest has apiVersion={api_version:?}, not supported in this version of krew (try updating plugin index or install a newer version of krew)"
        ));
    }
    let kind = string(&["kind"]);
    if kind != "Plugin" {
        errors.push(format!("plugin manifest has kind={kind:?}, but only \"Plugin\" is supported"));
    }
    let name = string(&["metadata", "name"]);
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&name.to_ascii_uppercase().as_str())
        || (name.len() == 4
            && ["COM", "LPT"].contains(&name[..3].to_ascii_uppercase().as_str())
            && name[3..].chars().all(|c| ('1'..='9').contains(&c)));
    if name.is_empty() || !name.chars().all(|c| c == '_' || c == '-' || c.is_alphanumeric()) || reserved {
        errors.push(format!("the plugin name {name:?} is not allowed, must match \"^[\\\\w-]+$\""));
    }
    if name != expected {
        errors.push(format!("plugin should be named {expected:?}, not {name:?}"));
    }
    let short = string(&["spec", "shortDescription"]);
    if short.is_empty() {
        errors.push("should have a short description".into());
    } else if short.contains(['\r', '\n']) {
        errors.push("should not have line breaks in short description".into());
    }
    let version = string(&["spec", "version"]);
    if version.is_empty() {
        errors.push("should have a version specified".into());
    } else if let Err(why) = semantic(&version) {
        errors.push(format!("failed to parse plugin version: {why}"));
    }
    let platforms = field(&["spec", "platforms"]).and_then(Value::as_array).cloned().unwrap_or_default();
    if platforms.is_empty() {
        errors.push("should have a platform specified".into());
    }
    let mut selected: Vec<Vec<usize>> = vec![Vec::new(); SUPPORTED.len()];
    for (index, platform) in platforms.iter().enumerate() {
        for why in check_platform(platform) {
            errors.push(format!("platform[{index}] is badly constructed: {why}"));
        }
        let matches: Vec<usize> = (0..SUPPORTED.len()).filter(|&i| selects(platform, SUPPORTED[i])).collect();
        if matches.is_empty() {
            errors.push(format!("spec.platform[{index}]'s selector doesn't match any supported platforms"));
        }
        for i in matches {
            selected[i].push(index);
        }
    }
    for (i, indexes) in selected.iter().enumerate() {
        if indexes.len() > 1 {
            let (os, arch) = SUPPORTED[i];
            errors.push(format!(
                "overlapping platform selectors found: multiple spec.platforms (at indexes {indexes:?}) have overlapping selectors that select {os}/{arch}"
            ));
        }
    }
    errors
}

/// `vMAJOR.MINOR.PATCH` with optional `-pre` and `+build` (krew's `semver.Parse`, which is
/// apimachinery's `ParseSemantic` after a leading `v`).
fn semantic(version: &str) -> Result<(), String> {
    let Some(rest) = version.strip_prefix('v') else {
        return Err(format!("version string {version:?} not starting with 'v'"));
    };
    let core = rest.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!("illegal version string {rest:?}"));
    }
    if let Some(zero) = parts.iter().find(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(format!("illegal zero-prefixed version component {zero:?} in {rest:?}"));
    }
    Ok(())
}

fn check_platform(platform: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let text = |key: &str| platform.get(key).and_then(Value::as_str).unwrap_or_default();
    if text("uri").is_empty() {
        errors.push("`uri` has to be set".into());
    }
    let sha = text("sha256");
    if sha.is_empty() {
        errors.push("`sha256` sum has to be set".into());
    } else if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        errors.push(format!("`sha256` value {sha} is not valid, must match pattern ^[a-f0-9]{{64}}$"));
    }
    if text("bin").is_empty() {
        errors.push("`bin` has to be set".into());
    }
    match platform.get("files") {
        None => {}
        Some(Value::Array(files)) if files.is_empty() => {
            errors.push("`files` is invalid: `files` has to be unspecified or non-empty".into())
        }
        Some(Value::Array(files)) => {
            for file in files {
                for key in ["from", "to"] {
                    if file.get(key).and_then(Value::as_str).unwrap_or_default().is_empty() {
                        errors.push(format!("`files` is invalid: `{key}` field has to be set"));
                    }
                }
            }
        }
        Some(_) => errors.push("`files` is invalid: `files` has to be unspecified or non-empty".into()),
    }
    let selector = platform.get("selector");
    let labels = selector.and_then(|s| s.get("matchLabels")).and_then(Value::as_object);
    let expressions = selector.and_then(|s| s.get("matchExpressions")).and_then(Value::as_array);
    match selector {
        None | Some(Value::Null) => errors.push("invalid platform selector: nil selector is not supported".into()),
        Some(_) if labels.is_none_or(|l| l.is_empty()) && expressions.is_none_or(|e| e.is_empty()) => {
            errors.push("invalid platform selector: empty selector is not supported".into())
        }
        Some(_) => {
            let keys = labels.into_iter().flat_map(|l| l.keys().cloned());
            let expression_keys = expressions
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("key").and_then(Value::as_str).map(str::to_string));
            for key in keys.chain(expression_keys) {
                if key != "os" && key != "arch" {
                    errors.push(format!("invalid platform selector: key {key:?} not supported"));
                }
            }
        }
    }
    errors
}

/// Whether a platform's selector selects `os`/`arch` (matchLabels and In/NotIn expressions).
fn selects(platform: &Value, (os, arch): (&str, &str)) -> bool {
    let value_of = |key: &str| if key == "os" { os } else { arch };
    let Some(selector) = platform.get("selector") else { return false };
    let labels_hold = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|labels| labels.iter().all(|(k, v)| v.as_str() == Some(value_of(k))));
    let expressions_hold = selector.get("matchExpressions").and_then(Value::as_array).is_none_or(|all| {
        all.iter().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> =
                e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            let has = values.contains(&value_of(key));
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => has,
                Some("NotIn") => !has,
                _ => false,
            }
        })
    });
    labels_hold && expressions_hold
}

/// What krew's install checks of an archive (`internal/download/downloader.go`,
/// validate-krew-manifest's licence check): gzip'd tar of regular files and directories, no
/// entry outside the archive, the binary and a licence file present.
pub fn check_archive(archive: &Path, bin: &str) -> Vec<String> {
    // Names from `-t` (one per line, whatever they hold); entry types from `-tv`, in the same order.
    let listing = run(Command::new("tar").arg("-tzf").arg(archive))
        .and_then(|names| Ok((names, run(Command::new("tar").arg("-tvzf").arg(archive))?)));
    let (names_listing, verbose) = match listing {
        Ok(listings) => listings,
        Err(error) => return vec![format!("not a gzip'd tar: {error}")],
    };
    let mut errors = Vec::new();
    let mut names = Vec::new();
    for (name, line) in names_listing.lines().zip(verbose.lines()) {
        match line.chars().next() {
            Some('-' | 'd') => {}
            _ => errors.push(format!("unable to handle file type for {name:?} in tar")),
        }
        if name.split('/').any(|part| part == "..") {
            errors.push(format!("refusing to unpack archive with suspicious entry {name:?}"));
        }
        if name.starts_with(['/', '\\']) {
            errors.push(format!("refusing to unpack archive with absolute entry {name:?}"));
        }
        names.push(name.trim_start_matches("./").to_string());
    }
    if !names.iter().any(|n| n == bin) {
        errors
            .push(format!("can't create symbolic link, source binary ({bin:?}) cannot be found in extracted archive"));
    }
    let licence =
        ["license", "license.txt", "license.md", "licenses", "licenses.txt", "licenses.md", "copying", "copying.txt"];
    if !names.iter().any(|n| licence.contains(&n.rsplit('/').next().unwrap_or_default().to_ascii_lowercase().as_str()))
    {
        errors.push(format!(
            "LICENSE (or alike) file is not extracted from the archive as part of installation: could not find license file among {names:?}"
        ));
    }
    errors
}
