//! The Argo CD health checks (config/argocd/health/: a shared preamble and one part per kind,
//! joined as the generated argocd-cm holds them), run in a real Lua 5.1 interpreter (the
//! language Argo CD's gopher-lua speaks) against the statuses the operator writes.

use mlua::{Lua, LuaSerdeExt, Value as LuaValue};
use serde_json::{Value, json};
use std::path::Path;

/// Runs the health check of `kind` exactly as the generated argocd-cm entry holds it.
fn health(kind: &str, object: Value) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scripts = xtask::health_checks(&root).unwrap();
    let script = &scripts.iter().find(|(k, _)| *k == kind).unwrap().1;
    let lua = Lua::new();
    let obj = lua.to_value(&object).unwrap();
    lua.globals().set("obj", obj).unwrap();
    let result: mlua::Table = lua.load(script.as_str()).eval().unwrap();
    let status: String = result.get("status").unwrap();
    let message: LuaValue = result.get("message").unwrap();
    (status, message.as_string().map(|m| m.to_str().unwrap().to_string()).unwrap_or_default())
}

fn object(generation: i64, status: Value, spec: Value) -> Value {
    json!({"metadata": {"name": "x", "generation": generation}, "spec": spec, "status": status})
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message})
}

#[test]
fn a_vm_is_healthy_when_ready_and_degraded_by_a_placement_failure() {
    let ready = object(
        2,
        json!({"observedGeneration": 2, "phase": "Ready", "conditions": [condition("Ready", "True", "Ready", "up")]}),
        json!({}),
    );
    assert_eq!(health("CatalystVM", ready).0, "Healthy");
    let unplaced = object(
        1,
        json!({"observedGeneration": 1, "phase": "Pending", "conditions": [
        condition("Scheduled", "False", "Unschedulable", "cpu: requested 97 cores, available 22"),
        condition("Ready", "False", "Unschedulable", "cpu: requested 97 cores, available 22")]}),
        json!({}),
    );
    assert_eq!(
        health("CatalystVM", unplaced),
        ("Degraded".into(), "Unschedulable: cpu: requested 97 cores, available 22".into())
    );
    let booting = object(
        1,
        json!({"observedGeneration": 1, "conditions": [condition("Ready", "False", "Provisioning", "VirtualMachine x is Starting")]}),
        json!({}),
    );
    assert_eq!(health("CatalystVM", booting).0, "Progressing");
    let impostor = object(
        1,
        json!({"observedGeneration": 1, "conditions": [
        condition("Ready", "True", "Ready", "up"),
        condition("NodeVerified", "False", "AddressMismatch", "node x claims this VM")]}),
        json!({}),
    );
    assert_eq!(health("CatalystVM", impostor), ("Degraded".into(), "AddressMismatch: node x claims this VM".into()));
}

#[test]
fn a_vm_halted_on_purpose_is_healthy() {
    let halted = object(
        3,
        json!({"observedGeneration": 3, "phase": "Halted", "conditions": [condition("Ready", "False", "Halted", "runStrategy is Halted")]}),
        json!({"runStrategy": "Halted"}),
    );
    assert_eq!(health("CatalystVM", halted).0, "Healthy");
}

#[test]
fn a_stale_status_is_never_read_as_healthy() {
    let stale = object(
        5,
        json!({"observedGeneration": 4, "conditions": [condition("Ready", "True", "Ready", "up")]}),
        json!({}),
    );
    assert_eq!(
        health("CatalystVM", stale),
        ("Progressing".into(), "the operator has not yet observed generation 5".into())
    );
    for kind in ["CatalystHost", "ServiceGroup"] {
        let stale = object(2, json!({"conditions": [condition("Ready", "True", "Ready", "up")]}), json!({}));
        assert_eq!(health(kind, stale).0, "Progressing", "{kind}");
        assert_eq!(health(kind, json!({"metadata": {"generation": 1}})).0, "Progressing", "{kind} without status");
    }
}

#[test]
fn a_group_that_does_not_fit_is_degraded_and_one_rolling_out_progresses() {
    let refused = object(
        1,
        json!({"observedGeneration": 1, "conditions": [condition("Ready", "False", "DoesNotFit", "cpu: requested 96 cores, available 95")]}),
        json!({}),
    );
    assert_eq!(health("ServiceGroup", refused).0, "Degraded");
    let rolling = object(
        1,
        json!({"observedGeneration": 1, "conditions": [condition("Ready", "False", "Progressing", "3/12 replicas ready")]}),
        json!({}),
    );
    assert_eq!(health("ServiceGroup", rolling), ("Progressing".into(), "3/12 replicas ready".into()));
    let ready = object(
        1,
        json!({"observedGeneration": 1, "conditions": [condition("Ready", "True", "Ready", "12/12 replicas ready")]}),
        json!({}),
    );
    assert_eq!(health("ServiceGroup", ready).0, "Healthy");
}

#[test]
fn an_overcommitted_host_or_a_lost_node_is_degraded() {
    let healthy = object(
        1,
        json!({"observedGeneration": 1, "conditions": [
        condition("Overcommitted", "False", "WithinCapacity", "fits"), condition("Ready", "True", "NodeReady", "node hv-1 is Ready")]}),
        json!({}),
    );
    assert_eq!(health("CatalystHost", healthy).0, "Healthy");
    let over = object(
        1,
        json!({"observedGeneration": 1, "conditions": [
        condition("Overcommitted", "True", "VMsExceedCapacity", "its VMs take 260 cores"), condition("Ready", "True", "NodeReady", "up")]}),
        json!({}),
    );
    assert_eq!(health("CatalystHost", over), ("Degraded".into(), "Overcommitted: its VMs take 260 cores".into()));
    let lost = object(
        1,
        json!({"observedGeneration": 1, "conditions": [condition("Ready", "False", "NodeNotReady", "node hv-1 is not Ready")]}),
        json!({}),
    );
    assert_eq!(health("CatalystHost", lost).0, "Degraded");
}

#[test]
fn cores_found_shared_make_a_vm_or_group_degraded_and_a_missing_report_does_not() {
    for kind in ["CatalystVM", "ServiceGroup"] {
        let with_pinned = |status: &str, reason: &str| {
            let conditions = json!([
                condition("Ready", "True", "Ready", "up"),
                condition("Pinned", status, reason, "sms-2 shares CPUs 5")
            ]);
            object(
                1,
                json!({"observedGeneration": 1, "phase": "Ready", "readyReplicas": 3, "conditions": conditions}),
                json!({"replicas": 3}),
            )
        };
        assert_eq!(
            health(kind, with_pinned("False", "SharedCores")),
            ("Degraded".into(), "SharedCores: sms-2 shares CPUs 5".into())
        );
        assert_eq!(health(kind, with_pinned("False", "NotExclusive")).0, "Degraded");
        assert_eq!(health(kind, with_pinned("False", "NoReport")).0, "Healthy", "{kind}");
        assert_eq!(health(kind, with_pinned("True", "Pinned")).0, "Healthy", "{kind}");
    }
}

/// Issue 22: a host being drained is Progressing, Degraded once its evacuation is blocked, and
/// Healthy again when it is done; a moving VM is Progressing.
#[test]
fn a_drain_is_progressing_until_done_and_degraded_when_blocked() {
    let host = |evacuated: Value| {
        let conditions = json!([condition("Ready", "True", "NodeReady", "node hv-1 is Ready"), evacuated]);
        object(1, json!({"observedGeneration": 1, "conditions": conditions}), json!({}))
    };
    let draining = host(condition("Evacuated", "False", "Progressing", "2 VM(s) left, 1 moving"));
    assert_eq!(health("CatalystHost", draining), ("Progressing".into(), "evacuating: 2 VM(s) left, 1 moving".into()));
    let blocked = host(condition("Evacuated", "False", "Blocked", "ns/db: no other host takes it"));
    assert_eq!(health("CatalystHost", blocked).0, "Degraded");
    assert_eq!(health("CatalystHost", host(condition("Evacuated", "True", "Complete", "no VM is left"))).0, "Healthy");
    let moving = object(
        1,
        json!({"observedGeneration": 1, "conditions": [
            condition("Ready", "True", "Ready", "up"),
            condition("Moving", "True", "Migrating", "live-migrating to CatalystHost host-2")]}),
        json!({}),
    );
    assert_eq!(health("CatalystVM", moving).0, "Progressing");
}
