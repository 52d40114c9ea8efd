//! The plan as a person reads it in a terminal: aligned tables, then every violation, then
//! the totals and the answer.

use super::whatif::{HostLoss, MoreHosts};
use super::{Plan, Res, Verdict};
use crate::key::ObjectKey;
use crate::quantity::{HumanBytes, HumanCores};
use std::fmt::Write;

/// Columns padded to their widest cell, two spaces apart.
fn aligned(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}", width = *width)).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn cores_of(used: u64, of: u64) -> String {
    format!("{}/{}", HumanCores(used), HumanCores(of))
}

/// Both pools' bytes.
fn hugepages(res: Res) -> u64 {
    res.hugepages_1gi + res.hugepages_2mi
}

fn bytes_of(used: u64, of: u64) -> String {
    format!("{}/{}", HumanBytes(used), HumanBytes(of))
}

/// Names without the namespace when every object shares one, to keep the table narrow.
fn short(key: &ObjectKey, common_namespace: Option<&str>) -> String {
    match (common_namespace, key.namespace()) {
        (Some(ns), Some(key_ns)) if ns == key_ns => key.name().to_string(),
        _ => key.to_string(),
    }
}

fn common_namespace(plan: &Plan) -> Option<String> {
    let mut namespaces = plan.vms.iter().map(|vm| vm.vm.namespace());
    let first = namespaces.next()??;
    namespaces.all(|ns| ns == Some(first)).then(|| first.to_string())
}

pub fn table(plan: &Plan, more: Option<&MoreHosts>, loss: Option<&[HostLoss]>) -> String {
    let ns = common_namespace(plan);
    let ns = ns.as_deref();
    let mut out = String::new();
    if let Some(ns) = ns {
        let _ = writeln!(out, "Namespace: {ns}\n");
    }

    // Hugepage columns only for layouts that have pools or ask for them.
    let pooled =
        plan.hosts.iter().any(|h| hugepages(h.allocatable) > 0) || plan.vms.iter().any(|vm| hugepages(vm.demand) > 0);
    let host_rows: Vec<Vec<String>> = plan
        .hosts
        .iter()
        .map(|h| {
            let mut row = vec![
                h.name.clone(),
                h.node_name.clone(),
                if h.failure_domain == h.name { "-".into() } else { h.failure_domain.clone() },
                if h.schedulable { "yes".into() } else { "no".into() },
                cores_of(h.allocated.millicores, h.allocatable.millicores),
                HumanCores(h.free.millicores).to_string(),
                bytes_of(h.allocated.memory, h.allocatable.memory),
                HumanBytes(h.free.memory).to_string(),
            ];
            if pooled {
                row.push(bytes_of(hugepages(h.allocated), hugepages(h.allocatable)));
            }
            row.push(h.vms.iter().map(|vm| short(vm, ns)).collect::<Vec<_>>().join(","));
            row
        })
        .collect();
    let _ = writeln!(out, "HOSTS ({})", plan.hosts.len());
    let mut headers =
        vec!["HOST", "NODE", "DOMAIN", "SCHED", "CPU USED/ALLOC", "CPU FREE", "MEMORY USED/ALLOC", "MEMORY FREE"];
    if pooled {
        headers.push("HUGEPAGES USED/ALLOC");
    }
    headers.push("VMS");
    out.push_str(&aligned(&headers, &host_rows));

    let vm_rows: Vec<Vec<String>> = plan
        .vms
        .iter()
        .map(|vm| {
            let mut row = vec![
                short(&vm.vm, ns),
                HumanCores(vm.demand.millicores).to_string(),
                HumanBytes(vm.demand.memory).to_string(),
            ];
            if pooled {
                row.push(HumanBytes(hugepages(vm.demand)).to_string());
            }
            row.push(vm.host.clone().unwrap_or_else(|| "-".into()));
            row.push(format!("{:?}", vm.decision));
            row
        })
        .collect();
    let _ = writeln!(out, "\nVMS ({}), cores and memory with emulator thread and launcher overhead", plan.vms.len());
    let headers: &[&str] = if pooled {
        &["VM", "CPU", "MEMORY", "HUGEPAGES", "HOST", "DECISION"]
    } else {
        &["VM", "CPU", "MEMORY", "HOST", "DECISION"]
    };
    out.push_str(&aligned(headers, &vm_rows));

    if !plan.groups.is_empty() {
        let group_rows: Vec<Vec<String>> = plan
            .groups
            .iter()
            .map(|g| {
                let available = g.available.unwrap_or_default();
                vec![
                    short(&g.group, ns),
                    short(&g.vm, ns),
                    g.replicas.to_string(),
                    cores_of(g.demand.millicores, available.millicores),
                    bytes_of(g.demand.memory, available.memory),
                    if g.fits { "yes".into() } else { "NO".into() },
                ]
            })
            .collect();
        let _ =
            writeln!(out, "\nSERVICE GROUPS ({}), what the replicas need of what their VM has left", plan.groups.len());
        out.push_str(&aligned(&["GROUP", "VM", "REPLICAS", "CPU NEED/LEFT", "MEMORY NEED/LEFT", "FITS"], &group_rows));
    }

    if !plan.violations.is_empty() {
        let _ = writeln!(out, "\nVIOLATIONS ({})", plan.violations.len());
        for violation in &plan.violations {
            let _ = writeln!(out, "- {}", violation.message);
        }
    }

    let totals = &plan.totals;
    let _ = writeln!(out, "\nTOTALS");
    let _ = writeln!(out, "demand:      {} ({} VMs, overheads included)", totals.demand, plan.vms.len());
    let _ = writeln!(out, "allocatable: {} ({} hosts, capacity - reserved)", totals.allocatable, plan.hosts.len());
    if totals.shortfall != Res::ZERO {
        let _ = writeln!(out, "shortfall:   {}: no packing fits these VMs on these hosts", totals.shortfall);
    }

    if let Some(more) = more {
        let _ = writeln!(out, "\nMORE HOSTS LIKE {}", more.like);
        let every = if more.never_fit.is_empty() {
            "every VM".to_string()
        } else {
            let _ = writeln!(
                out,
                "no number of such hosts places {}: an empty one cannot take it (see its violations)",
                more.never_fit.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            "every other VM".to_string()
        };
        match more.add {
            Some(0) => {
                let _ = writeln!(out, "none needed: {every} has a host");
            }
            Some(add) => {
                let least = if more.proven_least {
                    "proven the least"
                } else {
                    "fewer not ruled out: the search ran out of its budget"
                };
                let _ = writeln!(
                    out,
                    "add {add} (then {} hosts in all) to place {every} ({least}); the totals alone need at least {} more",
                    plan.hosts.len() + add,
                    more.lower_bound
                );
            }
            None => {
                let _ = writeln!(out, "no number of such hosts places {every}");
            }
        }
        if more.not_about_hosts > 0 {
            let _ = writeln!(out, "{} violation(s) are not about hosts and remain", more.not_about_hosts);
        }
    }

    if let Some(loss) = loss {
        let _ = writeln!(out, "\nHOST LOSS (N+1): can each host's VMs be re-placed on the others?");
        let rows: Vec<Vec<String>> = loss
            .iter()
            .map(|l| {
                vec![
                    l.host.clone(),
                    (l.replaced.len() + l.stranded.len()).to_string(),
                    l.replaced
                        .iter()
                        .map(|(vm, host)| format!("{}->{host}", short(vm, ns)))
                        .collect::<Vec<_>>()
                        .join(","),
                    if l.stranded.is_empty() {
                        "none".into()
                    } else {
                        l.stranded.iter().map(|vm| short(vm, ns)).collect::<Vec<_>>().join(",")
                    },
                ]
            })
            .collect();
        out.push_str(&aligned(&["LOST HOST", "VMS", "RE-PLACED", "STRANDED"], &rows));
    }

    let stranded: usize = loss.into_iter().flatten().map(|l| l.stranded.len()).sum();
    let verdict = match &plan.verdict {
        Verdict::Fits => "fits".to_string(),
        Verdict::DoesNotFit { proof } => {
            format!("does NOT fit ({} violations), proven: {proof}", plan.violations.len())
        }
        Verdict::NotFoundWithinBudget { searched } => format!(
            "does NOT fit within the search budget ({} violations; {searched} placements searched, no packing found and none ruled out)",
            plan.violations.len()
        ),
    };
    let _ = match stranded {
        0 => writeln!(out, "\nRESULT: {verdict}"),
        _ => writeln!(out, "\nRESULT: {verdict}; losing a host would strand {stranded} VM(s)"),
    };
    out
}

/// A host's evacuation as a person reads it: each VM's move, then those that cannot leave.
pub fn evacuation(evacuation: &super::evacuate::Evacuation, departure: super::evacuate::Departure) -> String {
    use super::evacuate::Departure;
    let mut out = String::new();
    let (title, none) = match departure {
        Departure::Drain => ("DRAIN", "it holds no VM"),
        Departure::Loss => ("LOSS", "it holds no VM"),
    };
    let _ = writeln!(out, "{title} {}", evacuation.host);
    if evacuation.moves.is_empty() && evacuation.blocked.is_empty() {
        let _ = writeln!(out, "{none}");
        return out;
    }
    if !evacuation.moves.is_empty() {
        let rows: Vec<Vec<String>> =
            evacuation.moves.iter().map(|m| vec![m.vm.to_string(), m.to.clone(), m.how.as_str().to_string()]).collect();
        out.push_str(&aligned(&["VM", "TO", "HOW"], &rows));
    }
    for blocked in &evacuation.blocked {
        let _ = writeln!(out, "- cannot leave: {}: {}", blocked.vm, blocked.reason);
    }
    let _ = match (evacuation.blocked.len(), departure) {
        (0, Departure::Drain) => writeln!(out, "every VM can leave, one move at a time"),
        (0, Departure::Loss) => writeln!(out, "every VM restarts elsewhere"),
        (n, Departure::Drain) => writeln!(out, "{n} VM(s) cannot leave: the drain would be blocked"),
        (n, Departure::Loss) => writeln!(out, "{n} VM(s) would stay down"),
    };
    out
}
