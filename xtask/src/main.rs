//! `cargo xtask generate [ROOT]`: writes every generated file (CRDs, the chart's copies, RBAC
//! rules, kustomize bases, the Argo CD health checks, the reference picture) into the repository.
//! `cargo xtask krew VERSION HOMEPAGE BASE_URL OUT_DIR TARGET=BINARY...`: the release archives
//! of `kubectl catalyst` and its krew plugin manifest, checked by krew's rules.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask generate [ROOT]  (ROOT: the repository, by default the current directory)\n       \
                     cargo xtask krew VERSION HOMEPAGE BASE_URL OUT_DIR TARGET=BINARY...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate"] => generate(&PathBuf::from(".")),
        ["generate", root] => generate(&PathBuf::from(root)),
        ["krew", version, homepage, base_url, out, binaries @ ..] if !binaries.is_empty() => {
            krew(version, homepage, base_url, &PathBuf::from(out), binaries)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn generate(root: &std::path::Path) -> Result<(), String> {
    let files = xtask::files(root).map_err(|e| format!("reading the health checks: {e}"))?;
    for (path, content) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, content).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Packages each `TARGET=BINARY`, writes `OUT_DIR/catalyst.yaml` listing the archives, and
/// fails on anything krew would refuse.
fn krew(version: &str, homepage: &str, base_url: &str, out: &std::path::Path, binaries: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut archives = Vec::new();
    for pair in binaries {
        let (target, binary) = pair.split_once('=').ok_or_else(|| format!("{pair}: expected TARGET=BINARY"))?;
        let archive = xtask::krew::package(binary.as_ref(), "LICENSE".as_ref(), version, target, out)?;
        let bin = if target.contains("-windows-") { "kubectl-catalyst.exe" } else { "kubectl-catalyst" };
        let errors = xtask::krew::check_archive(&archive.path, bin);
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        archives.push(archive);
    }
    let manifest = xtask::krew::manifest(version, homepage, base_url, &archives);
    let file = format!("{}.yaml", xtask::krew::PLUGIN);
    let errors = xtask::krew::validate(&file, &manifest);
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    std::fs::write(out.join(&file), manifest).map_err(|e| format!("writing {file}: {e}"))
}
