//! `kubectl catalyst plan --live`: what merging a pull request's files would do to the layout
//! that runs. The files' objects take the place of the live ones of the same kind and name,
//! keeping the live status (where each VM runs, each host's ledger); live objects the files do
//! not name stay as they are. The merged layout is planned as the operator would plan it, and
//! compared with the live one: VMs that would be placed, VMs whose change KubeVirt applies only
//! on a restart, ServiceGroups that would no longer fit. Pure: live objects and manifests in,
//! a report out.

use crate::key::ObjectKey;
use crate::manifest::Manifests;
use crate::planner::{self, GroupPlan, Overhead, Plan, PlanInput, VmPlan};
use crate::pool::HostPool;
use crate::render::{OnHost, virtual_machine};
use crate::status::Live;
use catalyst_api::{CatalystHost, CatalystVM};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The live layout with the files' objects merged in.
pub fn overlay(live: &Live, files: &Manifests) -> Live {
    Live {
        hosts: merge_kind(&live.hosts, &files.hosts, |h| h.status.clone(), |h, s| h.status = s),
        vms: merge_kind(&live.vms, &files.vms, |vm| vm.status.clone(), |vm, s| vm.status = s),
        groups: merge_kind(&live.groups, &files.groups, |g| g.status.clone(), |g, s| g.status = s),
    }
}

/// The live objects, each replaced by the file's object of the same key with the live status
/// (a status in a file is not the cluster's), then the files' new objects; sorted by key.
fn merge_kind<K: kube::Resource + Clone, S>(
    live: &[K],
    files: &[K],
    status: impl Fn(&K) -> Option<S>,
    set_status: impl Fn(&mut K, Option<S>),
) -> Vec<K> {
    let mut merged: BTreeMap<ObjectKey, K> = live.iter().map(|o| (ObjectKey::of(o), o.clone())).collect();
    for object in files {
        let key = ObjectKey::of(object);
        let mut object = object.clone();
        set_status(&mut object, merged.get(&key).and_then(&status));
        merged.insert(key, object);
    }
    merged.into_values().collect()
}

/// What a merge would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeReport {
    /// VMs the files add (or that wait for a host today), and the host the plan gives them
    /// (none: no host takes them).
    pub placements: Vec<Placement>,
    /// Running VMs whose change KubeVirt applies only on a restart.
    pub restarts: Vec<Restart>,
    /// ServiceGroups that fit their VM today, or are new, and would not fit.
    pub misfits: Vec<String>,
    /// VMs and groups the merge neither places, restarts nor leaves without room.
    pub untouched: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub vm: String,
    pub host: Option<String>,
}

/// A running VM whose VirtualMachine would change where KubeVirt's `LiveUpdate` cannot carry
/// the change into the running instance: the fields that differ, as `path: old → new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    pub vm: String,
    pub host: String,
    pub changes: Vec<String>,
}

/// The live layout and the merged one, as the planner reads them.
pub struct Inputs {
    pub merged: Live,
    pub before: PlanInput,
    pub after: PlanInput,
}

/// The inputs of the plans of `live` before and after `files` are merged in, on the hosts of
/// `pool`.
pub fn inputs(live: &Live, files: &Manifests, overhead: &Overhead, pool: &HostPool) -> Inputs {
    let merged = overlay(live, files);
    Inputs { before: live_input(live, overhead, pool), after: live_input(&merged, overhead, pool), merged }
}

/// A live layout as the planner reads it, its ServiceGroups included.
fn live_input(live: &Live, overhead: &Overhead, pool: &HostPool) -> PlanInput {
    let mut input = live.plan_input(overhead);
    input.hosts.retain(|h| live.hosts.iter().any(|l| l.name_any() == h.name && pool.contains(l.labels())));
    input.groups = live.groups.iter().map(planner::GroupModel::from_group).collect();
    input
}

/// What the merge changes: `before` and `after` are the plans of the live and merged layouts.
pub fn compare(live: &Live, merged: &Live, before: &Plan, after: &Plan) -> MergeReport {
    let vm_plan = |plan: &Plan, key: &ObjectKey| plan.vms.iter().find(|v| v.vm == *key).cloned();
    let group_fits =
        |plan: &Plan, key: &ObjectKey| plan.groups.iter().find(|g| g.group == *key).map(|g: &GroupPlan| g.fits);
    let live_vms: BTreeMap<ObjectKey, &CatalystVM> = live.vms.iter().map(|vm| (ObjectKey::of(vm), vm)).collect();
    let hosts: BTreeMap<String, &CatalystHost> = merged.hosts.iter().map(|h| (h.name_any(), h)).collect();
    let mut report = MergeReport { placements: Vec::new(), restarts: Vec::new(), misfits: Vec::new(), untouched: 0 };
    for vm in &merged.vms {
        let key = ObjectKey::of(vm);
        let running = vm.status.as_ref().and_then(|s| s.host.as_deref());
        match (running, live_vms.get(&key)) {
            (Some(host), Some(old)) => {
                let changes = hosts.get(host).map(|h| restart_changes(old, vm, OnHost::of(h))).unwrap_or_default();
                if changes.is_empty() {
                    report.untouched += 1;
                } else {
                    report.restarts.push(Restart { vm: key.to_string(), host: host.to_string(), changes });
                }
            }
            _ => {
                let host = vm_plan(after, &key).and_then(|p: VmPlan| p.host);
                let waits_today = vm_plan(before, &key).is_some_and(|p| p.host.is_none());
                if live_vms.contains_key(&key) && waits_today && host.is_none() {
                    report.untouched += 1;
                } else {
                    report.placements.push(Placement { vm: key.to_string(), host });
                }
            }
        }
    }
    for group in &merged.groups {
        let key = ObjectKey::of(group);
        match (group_fits(before, &key), group_fits(after, &key)) {
            (Some(true) | None, Some(false)) => report.misfits.push(key.to_string()),
            _ => report.untouched += 1,
        }
    }
    report
}

/// The fields of `old`'s VirtualMachine that `new` changes and that KubeVirt applies only on a
/// restart. KubeVirt sets `RestartRequired` when the template spec differs once the fields the
/// `LiveUpdate` rollout strategy carries into a running instance are copied over: the CPU
/// sockets, the guest memory, the node selector, affinity and tolerations (kubevirt v1.9.0,
/// `syncRestartRequired` in `pkg/virt-controller/watch/vm/vm.go`). The instance's network
/// interfaces are live-updatable only in hotplug cases Catalyst does not render.
pub fn restart_changes(old: &CatalystVM, new: &CatalystVM, host: OnHost) -> Vec<String> {
    let template = |vm: &CatalystVM| {
        let rendered = virtual_machine(vm, host);
        let mut spec = serde_json::to_value(rendered.spec.template.spec).unwrap_or(Value::Null);
        for live_updatable in [
            &["domain", "cpu", "sockets"][..],
            &["domain", "memory", "guest"],
            &["nodeSelector"],
            &["affinity"],
            &["tolerations"],
        ] {
            remove(&mut spec, live_updatable);
        }
        spec
    };
    let mut changes = Vec::new();
    differences(&template(old), &template(new), &mut String::new(), &mut changes);
    changes
}

fn remove(value: &mut Value, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            if let Some(map) = value.as_object_mut() {
                map.remove(*last);
            }
        }
        [first, rest @ ..] => {
            if let Some(inner) = value.get_mut(*first) {
                remove(inner, rest);
            }
        }
    }
}

/// Each leaf where `old` and `new` differ, as `path: old → new` (`-` for absent).
fn differences(old: &Value, new: &Value, path: &mut String, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                differences(a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null), path, out);
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                differences(a, b, path, out);
                path.truncate(len);
            }
        }
        _ if old == new => {}
        _ => out.push(format!("{path}: {} → {}", brief(old), brief(new))),
    }
}

fn brief(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The report as the `plan` table's last section.
pub fn table(report: &MergeReport) -> String {
    use std::fmt::Write;
    let mut out = String::from("WHAT A MERGE DOES\n");
    for placement in &report.placements {
        let _ = match &placement.host {
            Some(host) => writeln!(out, "- place {} on {host}", placement.vm),
            None => writeln!(out, "- place {}: no host takes it (see the violations)", placement.vm),
        };
    }
    for restart in &report.restarts {
        let _ = writeln!(out, "- restart {} on {}: {}", restart.vm, restart.host, restart.changes.join(", "));
    }
    for group in &report.misfits {
        let _ = writeln!(out, "- {group} would no longer fit its VM (see the violations)");
    }
    let _ = writeln!(out, "{} VM(s) and group(s) untouched", report.untouched);
    out
}

#[cfg(test)]
mod tests;
