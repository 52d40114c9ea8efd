//! Every generated file in the repository is what the code generates now.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn generated_files_are_current() {
    for (path, content) in xtask::files(&repo()).unwrap() {
        let on_disk = std::fs::read_to_string(repo().join(&path)).unwrap_or_default();
        assert!(on_disk == content, "{path} is stale: run `cargo xtask generate`");
    }
}
