//! The operator's command line: what it does before it reaches the cluster.

use std::process::Command;

#[test]
fn the_operator_stops_at_once_when_it_cannot_serve_its_probes() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_catalyst-operator"))
        .arg(format!("--metrics-address={address}"))
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("cannot serve /metrics, /healthz and /readyz"), "{log}");
}

/// Settings that cannot work are refused with exit code 2 before anything starts.
#[test]
fn bad_settings_are_refused_before_anything_starts() {
    for (flags, refusal) in [
        (&["--client-qps=50", "--client-burst=0"][..], "--client-burst must be at least 1"),
        (&["--client-qps=-1"][..], "--client-qps must be 0 (no client-side limit) or more, not -1"),
        (&["--lease-duration-seconds=5", "--lease-renew-deadline-seconds=10"][..], "invalid leader election settings"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_catalyst-operator"))
            .args(flags)
            .args(["--metrics-address=127.0.0.1:0"])
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(log.contains(refusal), "{flags:?}: {log}");
    }
}
