//! Issue 23, item 3: the krew plugin manifest and archives this project ships pass krew's rules
//! (krew v0.4.5's validation, as `xtask::krew` carries it), and each rule refuses what krew
//! refuses, with krew's message.

use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::krew::{check_archive, manifest, package, validate};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("catalyst-krew-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn license() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../LICENSE")
}

/// A stand-in for the plugin's binary: the archive's shape, not its content, is under test.
fn binary(dir: &Path) -> PathBuf {
    let path = dir.join("kubectl-catalyst-built");
    std::fs::write(&path, "#!/bin/sh\necho kubectl-catalyst\n").unwrap();
    path
}

const GOOD: &str = r#"apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata: {name: catalyst}
spec:
  version: v0.1.0
  shortDescription: Plan Catalyst layouts
  platforms:
  - selector: {matchLabels: {os: linux, arch: amd64}}
    uri: https://example.invalid/a.tar.gz
    sha256: "0000000000000000000000000000000000000000000000000000000000000000"
    bin: kubectl-catalyst
"#;

#[test]
fn the_release_archives_and_manifest_pass_krews_rules() {
    let dir = scratch("release");
    let built = binary(&dir);
    let targets = ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin", "x86_64-pc-windows-msvc"];
    let archives: Vec<_> = targets.iter().map(|t| package(&built, &license(), "v0.1.0", t, &dir).unwrap()).collect();
    for (archive, bin) in archives.iter().zip(["kubectl-catalyst", "kubectl-catalyst", "kubectl-catalyst.exe"]) {
        assert_eq!(check_archive(&archive.path, bin), Vec::<String>::new());
        assert_eq!(archive.sha256.len(), 64);
        let listing = Command::new("tar").arg("-tzf").arg(&archive.path).output().unwrap();
        assert_eq!(String::from_utf8(listing.stdout).unwrap(), format!("{bin}\nLICENSE\n"));
    }
    let text =
        manifest("v0.1.0", "https://example.invalid/catalyst", "https://example.invalid/releases/v0.1.0/", &archives);
    assert_eq!(validate("catalyst.yaml", &text), Vec::<String>::new(), "{text}");
    assert!(
        text.contains(
            "uri: https://example.invalid/releases/v0.1.0/kubectl-catalyst-v0.1.0-aarch64-apple-darwin.tar.gz"
        )
    );
    assert!(text.contains("bin: kubectl-catalyst.exe"));
    assert!(package(&built, &license(), "v0.1.0", "riscv64gc-unknown-linux-gnu", &dir).is_err(), "krew has no riscv64");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_rule_refuses_what_krew_refuses() {
    assert_eq!(validate("catalyst.yaml", GOOD), Vec::<String>::new());
    let cases: &[(&str, &str, &str)] = &[
        (
            "apiVersion: krew.googlecontainertools.github.com/v1alpha2",
            "apiVersion: v1",
            "not supported in this version of krew",
        ),
        ("kind: Plugin", "kind: Tool", "but only \"Plugin\" is supported"),
        ("name: catalyst", "name: other", "plugin should be named \"catalyst\", not \"other\""),
        ("name: catalyst", "name: cat.alyst", "the plugin name \"cat.alyst\" is not allowed"),
        ("version: v0.1.0", "version: 0.1.0", "version string \"0.1.0\" not starting with 'v'"),
        ("version: v0.1.0", "version: v0.1", "illegal version string \"0.1\""),
        ("version: v0.1.0", "version: v01.2.3", "illegal zero-prefixed version component \"01\""),
        ("  shortDescription: Plan Catalyst layouts\n", "", "should have a short description"),
        ("shortDescription: Plan Catalyst layouts", "shortDescription: \"two\\nlines\"", "should not have line breaks"),
        (
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
            "\"ABCD\"",
            "must match pattern ^[a-f0-9]{64}$",
        ),
        ("    bin: kubectl-catalyst\n", "", "`bin` has to be set"),
        (
            "    bin: kubectl-catalyst\n",
            "    bin: kubectl-catalyst\n    files: []\n",
            "`files` has to be unspecified or non-empty",
        ),
        (
            "    bin: kubectl-catalyst\n",
            "    bin: kubectl-catalyst\n    files: [{from: '*'}]\n",
            "`to` field has to be set",
        ),
        ("{matchLabels: {os: linux, arch: amd64}}", "{}", "empty selector is not supported"),
        ("{matchLabels: {os: linux, arch: amd64}}", "{matchLabels: {os: linux, cpu: x}}", "key \"cpu\" not supported"),
        (
            "{matchLabels: {os: linux, arch: amd64}}",
            "{matchLabels: {os: freebsd}}",
            "doesn't match any supported platforms",
        ),
    ];
    for (from, to, message) in cases {
        let bad = GOOD.replacen(from, to, 1);
        assert_ne!(bad, GOOD, "{from:?} is not in the manifest");
        let errors = validate("catalyst.yaml", &bad);
        assert!(errors.iter().any(|e| e.contains(message)), "{message:?} missing in {errors:?} for:\n{bad}");
    }
    let second = "  - selector: {matchLabels: {os: linux}}\n    uri: u\n    sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"\n    bin: b\n";
    let overlapping = format!("{GOOD}{second}");
    let errors = validate("catalyst.yaml", &overlapping);
    assert!(
        errors.iter().any(|e| e.contains(
            "multiple spec.platforms (at indexes [0, 1]) have overlapping selectors that select linux/amd64"
        )),
        "{errors:?}"
    );
    assert_eq!(validate("catalyst.yml", GOOD), ["expected manifest extension \".yaml\" but found \".yml\""]);
    assert!(validate("catalyst.yaml", "platforms: [")[0].starts_with("failed to read plugin file"));
}

#[test]
fn an_archive_krew_would_not_unpack_is_refused() {
    let dir = scratch("archives");
    let stage = dir.join("stage");
    std::fs::create_dir_all(stage.join("sub")).unwrap();
    std::fs::write(stage.join("kubectl-catalyst"), "x").unwrap();
    std::os::unix::fs::symlink("kubectl-catalyst", stage.join("link")).unwrap();
    let archive = dir.join("bad.tar.gz");
    let made =
        Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&stage).args(["kubectl-catalyst", "link"]).status();
    assert!(made.unwrap().success());
    let errors = check_archive(&archive, "kubectl-catalyst");
    assert!(errors.iter().any(|e| e.contains("unable to handle file type for \"link")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("could not find license file")), "{errors:?}");
    let outside = dir.join("outside.tar.gz");
    let made = Command::new("tar")
        .arg("-czf")
        .arg(&outside)
        .arg("-C")
        .arg(stage.join("sub"))
        .arg("--transform=s,^,../,")
        .arg("../kubectl-catalyst")
        .status();
    assert!(made.unwrap().success());
    let errors = check_archive(&outside, "kubectl-catalyst");
    assert!(errors.iter().any(|e| e.contains("suspicious entry")), "{errors:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
