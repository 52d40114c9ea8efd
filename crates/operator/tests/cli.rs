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
