//! `kubectl catalyst status`: the live layout as the cluster's objects report it, host → VM →
//! group → replica, with each one's cores and its `Pinned` verdict; as text, or as a picture of
//! each host's and each VM's real core map. Pure: it reads a kubectl `List`.

use crate::key::ObjectKey;
use crate::planner::picture::{Canvas, FREE, MISFIT, VM_COLOURS};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The Catalyst objects of a cluster.
#[derive(Debug, Default)]
pub struct Live {
    pub hosts: Vec<CatalystHost>,
    pub vms: Vec<CatalystVM>,
    pub groups: Vec<ServiceGroup>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("not a kubectl List: {0}")]
    NotAList(serde_json::Error),
    #[error("{kind} {name} does not read: {source}")]
    Object { kind: String, name: String, source: serde_json::Error },
}

impl Live {
    /// The objects of `kubectl get catalysthosts,catalystvms,servicegroups -A -o json`; other
    /// kinds are ignored.
    pub fn from_list(json: &str) -> Result<Self, LiveError> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            items: Vec<Value>,
        }
        let list: List = serde_json::from_str(json).map_err(LiveError::NotAList)?;
        let mut live = Live::default();
        for item in list.items {
            let kind = item["kind"].as_str().unwrap_or_default().to_string();
            let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let error = |source| LiveError::Object { kind: kind.clone(), name: name.clone(), source };
            match kind.as_str() {
                "CatalystHost" => live.hosts.push(serde_json::from_value(item).map_err(error)?),
                "CatalystVM" => live.vms.push(serde_json::from_value(item).map_err(error)?),
                "ServiceGroup" => live.groups.push(serde_json::from_value(item).map_err(error)?),
                _ => {}
            }
        }
        live.hosts.sort_by_key(ResourceExt::name_any);
        live.vms.sort_by_key(ObjectKey::of);
        live.groups.sort_by_key(ObjectKey::of);
        Ok(live)
    }

    /// The live layout as the planner reads it: each VM where it runs (where it is going, while
    /// it moves), the others waiting for a host.
    pub fn plan_input(&self, overhead: &crate::planner::Overhead) -> crate::planner::PlanInput {
        let vms = self
            .vms
            .iter()
            .map(|vm| {
                let mut model = crate::planner::VmModel::from_vm(vm, overhead);
                let status = vm.status.as_ref();
                model.placed = status.and_then(|s| s.moving.as_ref().map(|m| m.to.clone()).or_else(|| s.host.clone()));
                model
            })
            .collect();
        let hosts = self.hosts.iter().map(crate::planner::HostModel::from_host).collect();
        crate::planner::PlanInput { hosts, vms, groups: Vec::new() }
    }

    /// Whether every VM and group reports `Pinned=True`.
    pub fn all_pinned(&self) -> bool {
        let pinned = |conditions: &[Condition]| conditions.iter().any(|c| c.type_ == "Pinned" && c.status == "True");
        self.vms.iter().all(|vm| vm.status.as_ref().is_some_and(|s| pinned(&s.conditions)))
            && self.groups.iter().all(|g| g.status.as_ref().is_some_and(|s| pinned(&s.conditions)))
    }

    fn vms_on(&self, host: &str) -> Vec<&CatalystVM> {
        self.vms.iter().filter(|vm| vm.status.as_ref().and_then(|s| s.host.as_deref()) == Some(host)).collect()
    }

    fn groups_of<'a>(&'a self, vm: &'a CatalystVM) -> impl Iterator<Item = &'a ServiceGroup> {
        self.groups.iter().filter(move |g| g.namespace() == vm.namespace() && g.spec.vm == vm.name_any())
    }
}

/// `Pinned`, `not pinned: <reason>`, or `pinned: unknown` from an object's conditions.
fn pinned(conditions: &[Condition]) -> String {
    match conditions.iter().find(|c| c.type_ == "Pinned") {
        Some(c) if c.status == "True" => "Pinned".into(),
        Some(c) => format!("not pinned: {} ({})", c.reason, c.message),
        None => "pinned: unknown".into(),
    }
}

fn numa(cells: &[u32]) -> String {
    match cells {
        [] => String::new(),
        [one] => format!(", NUMA {one}"),
        many => format!(", NUMA {}", many.iter().map(ToString::to_string).collect::<Vec<_>>().join("+")),
    }
}

/// The tree as text.
pub fn tree(live: &Live) -> String {
    let mut out = String::new();
    for host in &live.hosts {
        let status = host.status.clone().unwrap_or_default();
        let _ = write!(
            out,
            "CatalystHost {} (node {}): {} cores",
            host.name_any(),
            host.spec.node_name,
            host.spec.capacity.cpu
        );
        match &status.cores {
            Some(cores) => {
                let _ = writeln!(out, ", kubelet reserves {}, free {}", or_none(&cores.reserved), or_none(&cores.free));
            }
            None => out.push_str(", no report of its cores\n"),
        }
        if let Some(evacuation) = &status.evacuation {
            evacuation_lines(&mut out, evacuation);
        }
        branches(&live.vms_on(&host.name_any()), |vm, lines| vm_branch(&mut out, live, vm, lines));
    }
    let unplaced: Vec<&CatalystVM> =
        live.vms.iter().filter(|vm| vm.status.as_ref().and_then(|s| s.host.as_ref()).is_none()).collect();
    if !unplaced.is_empty() {
        out.push_str("not placed\n");
        branches(&unplaced, |vm, lines| vm_branch(&mut out, live, vm, lines));
    }
    out
}

/// A host's drain or recovery: its state, the moves under way and planned, and what blocks.
fn evacuation_lines(out: &mut String, evacuation: &catalyst_api::host::Evacuation) {
    let what = if evacuation.reason == "Fenced" { "fenced: its VMs restart elsewhere" } else { "draining" };
    let _ = writeln!(out, "│  {what}: {}, {} VM(s) left", evacuation.state, evacuation.remaining);
    for (moves, doing) in [(&evacuation.moving, "moving"), (&evacuation.planned, "next")] {
        for m in moves {
            let _ = writeln!(out, "│  {doing}: {} to {} ({})", m.vm, m.to, m.strategy);
        }
    }
    for blocked in &evacuation.blocked {
        let _ = writeln!(out, "│  cannot leave: {}: {}", blocked.vm, blocked.reason);
    }
}

/// Calls `each` with every item and its (branch, indent under it): the last one's branch closes.
fn branches<T>(items: &[T], mut each: impl FnMut(&T, (&'static str, &'static str))) {
    for (i, item) in items.iter().enumerate() {
        each(item, if i + 1 == items.len() { ("└─ ", "   ") } else { ("├─ ", "│  ") });
    }
}

fn or_none(list: &str) -> &str {
    if list.is_empty() { "none" } else { list }
}

fn vm_branch(out: &mut String, live: &Live, vm: &CatalystVM, (branch, indent): (&str, &str)) {
    let status = vm.status.clone().unwrap_or_default();
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "-".into());
    let cpus =
        status.host_cpus.as_deref().map(|c| format!(", host CPUs {c}{}", numa(&status.host_numa))).unwrap_or_default();
    let cpus = match &status.moving {
        Some(moving) => format!("{cpus}, moving to {} ({:?})", moving.to, moving.strategy),
        None => cpus,
    };
    let _ = writeln!(
        out,
        "{branch}CatalystVM {} {} cores {} {phase}{cpus} · {}",
        ObjectKey::of(vm),
        vm.spec.cpu,
        vm.spec.memory.0,
        pinned(&status.conditions)
    );
    let groups: Vec<&ServiceGroup> = live.groups_of(vm).collect();
    branches(&groups, |group, (branch, deeper)| {
        let status = group.status.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{indent}{branch}ServiceGroup {} {}×{} cores {} {}/{} ready · {}",
            group.name_any(),
            group.spec.replicas,
            group.spec.cpu,
            group.spec.memory.0,
            status.ready_replicas,
            group.spec.replicas,
            pinned(&status.conditions)
        );
        let held: BTreeMap<&str, _> = status.cores.iter().map(|c| (c.replica.as_str(), c)).collect();
        for ordinal in 1..=group.spec.replicas {
            let replica = format!("{}-{ordinal}", group.name_any());
            let branch = if ordinal == group.spec.replicas { "└─ " } else { "├─ " };
            let line = match held.get(replica.as_str()) {
                Some(c) if !c.cpus.is_empty() => format!("{replica}: {}{} on {}", c.cpus, numa(&c.numa), c.node),
                Some(c) => format!("{replica}: no exclusive CPUs on {}", c.node),
                None => format!("{replica}: not reported"),
            };
            let _ = writeln!(out, "{indent}{deeper}{branch}{line}");
        }
    });
}

const CELL: f64 = 14.0;
const RESERVED: &str = "#9aa0a6";
const TOP: f64 = 50.0;

/// One CPU of a row: its id, colour, tooltip, and the object holding it (kind, name), if any.
struct Cell {
    cpu: u32,
    fill: &'static str,
    title: String,
    holder: Option<(&'static str, String)>,
}

/// Each host's CPUs in a row, coloured by who holds them (grey: kept back by the kubelet; pale:
/// free), and under it each of its VMs' guest CPUs coloured by the replica that holds them, in
/// red where two hold the same.
pub fn svg(live: &Live) -> String {
    let mut rows: Vec<(String, Vec<Cell>)> = Vec::new();
    let mut colour_of: BTreeMap<String, &str> = BTreeMap::new();
    let mut colour = |key: &str| -> &'static str {
        let next = VM_COLOURS[colour_of.len() % VM_COLOURS.len()];
        colour_of.entry(key.to_string()).or_insert(next)
    };
    let cpus = |list: &str| crate::cpuset::CpuSet::parse(list).unwrap_or_default();
    for host in &live.hosts {
        let Some(cores) = host.status.as_ref().and_then(|s| s.cores.as_ref()) else { continue };
        let mut cells = Vec::new();
        let mut add = |list: &str, fill: &'static str, title: &str, holder: Option<(&'static str, String)>| {
            let title = |cpu| format!("CPU {cpu}: {title}");
            cells.extend(cpus(list).iter().map(|cpu| Cell { cpu, fill, title: title(cpu), holder: holder.clone() }));
        };
        add(&cores.reserved, RESERVED, "kept back by the kubelet", None);
        add(&cores.free, FREE, "free", None);
        for held in &cores.vms {
            add(&held.cpus, colour(&held.vm), &held.vm, Some(("vm", held.vm.clone())));
        }
        cells.sort_by_key(|c| c.cpu);
        rows.push((format!("{} (node {})", host.name_any(), host.spec.node_name), cells));
        for vm in live.vms_on(&host.name_any()) {
            let mut cells: Vec<Cell> = (0..vm.spec.cpu)
                .map(|cpu| Cell { cpu, fill: FREE, title: format!("guest CPU {cpu}: free"), holder: None })
                .collect();
            for group in live.groups_of(vm) {
                let fill = colour(&ObjectKey::of(group).to_string());
                for held in group.status.iter().flat_map(|s| &s.cores) {
                    for cpu in cpus(&held.cpus).iter() {
                        let Some(cell) = cells.iter_mut().find(|c| c.cpu == cpu) else { continue };
                        *cell = match &cell.holder {
                            // Held twice: red, naming both holders.
                            Some((_, first)) => {
                                let both = format!("{first} and {}", held.replica);
                                let title = format!("guest CPU {cpu}: shared by {both}");
                                Cell { cpu, fill: MISFIT, title, holder: Some(("shared", both)) }
                            }
                            None => {
                                let title = format!("guest CPU {cpu}: {}", held.replica);
                                Cell { cpu, fill, title, holder: Some(("replica", held.replica.clone())) }
                            }
                        };
                    }
                }
            }
            rows.push((format!("  {}", ObjectKey::of(vm)), cells));
        }
    }
    let widest = rows.iter().map(|(_, cells)| cells.len()).max().unwrap_or(0) as f64;
    let width = 240.0 + widest * CELL + 20.0;
    let height = TOP + rows.len() as f64 * (CELL + 10.0) + 20.0;
    let mut canvas = Canvas { out: String::new() };
    let _ = write!(
        canvas.out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#
    );
    canvas.label(
        10.0,
        24.0,
        "Cores as the kubelets report them: each host's CPUs, then each VM's guest CPUs",
        width,
        "#222",
    );
    canvas.label(
        10.0,
        40.0,
        "grey: kept back by the kubelet; pale: free; colours: the VM or replica that holds them",
        width,
        "#555",
    );
    for (row, (name, cells)) in rows.iter().enumerate() {
        let y = TOP + row as f64 * (CELL + 10.0);
        canvas.label(10.0, y + 11.0, name, 225.0, "#222");
        for (i, cell) in cells.iter().enumerate() {
            let holder = cell.holder.as_ref().map(|(kind, name)| (*kind, name.as_str()));
            canvas.rect((240.0 + i as f64 * CELL, y, CELL, CELL), cell.fill, holder, &cell.title);
        }
    }
    if rows.is_empty() {
        canvas.label(10.0, TOP + 11.0, "no host has a report of its cores yet", width, "#555");
    }
    canvas.out.push_str("</svg>\n");
    canvas.out
}
