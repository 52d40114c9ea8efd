//! `cargo xtask generate [ROOT]`: writes every generated file (CRDs, the chart's copies, RBAC
//! rules, kustomize bases, the Argo CD health checks, the reference picture) into the repository.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some("generate"), root, None) = (args.next().as_deref(), args.next(), args.next()) else {
        eprintln!("usage: cargo xtask generate [ROOT]  (ROOT: the repository, by default the current directory)");
        return ExitCode::from(2);
    };
    let root = PathBuf::from(root.unwrap_or_else(|| ".".into()));
    match generate(&root) {
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
