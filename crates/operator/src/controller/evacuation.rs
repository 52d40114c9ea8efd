//! A host being emptied (issue 22): drained for maintenance (`spec.maintenance`), or lost once
//! it is fenced, that is when its Node carries Kubernetes' non-graceful shutdown taint
//! `node.kubernetes.io/out-of-service` (GA in 1.28), which an admin or a remediation operator
//! sets after making sure the server is off. A host that is only NotReady is never emptied: a
//! partitioned host may still run its VMs against shared disks, and a second copy would
//! corrupt them.
//!
//! The host's reconcile plans where each of its VMs goes ([`catalyst_core::planner::evacuate`],
//! from the caches), grants the next moves in its status (`status.evacuation.moving`:
//! `maxParallelMoves` at a time in a drain, all at once for a fenced host whose VMs are down;
//! never two of one spread group), and reports the rest and what blocks. Each VM's reconcile
//! carries its own move out ([`super::moves`]).

use super::conditions::{Status, Wanted, wanted};
use super::moves::MOVING;
use super::{Context, key_of, placement, valid};
use catalyst_api::host::{BlockedMove, Evacuation, PlannedMove};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::planner::evacuate::{self, Blocked, Departure, How, Move};
use kube::ResourceExt;
use std::collections::BTreeSet;
use std::time::Duration;

/// The host's condition while it is emptied, and once it is.
pub const EVACUATED: &str = "Evacuated";

/// How long a VM whose move failed waits before the evacuation tries it again.
pub const RETRY_AFTER: Duration = Duration::from_secs(600);

/// How soon an evacuating host is looked at again: a move elsewhere may free its spread group.
pub const RECHECK: Duration = Duration::from_secs(10);

/// Why the host is emptied, if it is: fenced before drained.
pub fn departure(host: &CatalystHost, ctx: &Context) -> Option<Departure> {
    if ctx.stores.fenced(host) {
        Some(Departure::Loss)
    } else if host.spec.maintenance {
        Some(Departure::Drain)
    } else {
        None
    }
}

/// The host's evacuation and its `Evacuated` condition; none when it is not emptied.
pub fn evacuation(host: &CatalystHost, ctx: &Context) -> Option<(Evacuation, Wanted)> {
    let departure = departure(host, ctx)?;
    let name = host.name_any();
    let guards = ctx.stores.vms_on(Some(HostName::of(host)));
    let on_host: Vec<&CatalystVM> = valid(&guards).filter(|vm| vm.metadata.deletion_timestamp.is_none()).collect();
    let all = ctx.stores.vms.state();
    let plan = evacuate::evacuate(&placement::cached_input(ctx), &name, departure, ctx.search);
    let group_of = |key: &ObjectKey| catalyst_core::planner::model::spread_group(&ctx.stores.vm(key)?);
    // Groups with a member moving anywhere.
    let busy: BTreeSet<ObjectKey> = valid(&all)
        .filter(|vm| vm.status.as_ref().is_some_and(|s| s.moving.is_some()))
        .filter_map(|vm| group_of(&key_of(vm)))
        .collect();
    let under_way: Vec<Move> = on_host
        .iter()
        .filter_map(|vm| {
            let moving = vm.status.as_ref()?.moving.as_ref()?;
            let how = if moving.strategy == catalyst_api::vm::MoveStrategy::LiveMigrate {
                How::LiveMigrate
            } else {
                How::Restart
            };
            Some(Move { vm: key_of(*vm), to: moving.to.clone(), how })
        })
        .collect();
    let now = (ctx.clock)().0;
    // A VM whose move failed lately waits, with the failure's message.
    let failed_lately = |vm: &CatalystVM| -> Option<String> {
        let moving = vm.status.iter().flat_map(|s| &s.conditions).find(|c| c.type_ == MOVING)?;
        let lately = now.duration_since(moving.last_transition_time.0).unsigned_abs() < RETRY_AFTER;
        (moving.reason == "MoveFailed" && lately).then(|| moving.message.clone())
    };
    let paused: Vec<Blocked> = on_host
        .iter()
        .filter(|vm| vm.status.as_ref().is_none_or(|s| s.moving.is_none()))
        .filter_map(|vm| {
            let failed = failed_lately(vm)?;
            let reason = format!("{failed}; tried again {}s after", RETRY_AFTER.as_secs());
            Some(Blocked { vm: key_of(*vm), reason })
        })
        .collect();
    let paused_keys: BTreeSet<ObjectKey> = paused.iter().map(|b| b.vm.clone()).collect();
    let parallel = match departure {
        Departure::Drain => host.spec.max_parallel_moves.max(1) as usize,
        // Its VMs are down: they all start again elsewhere at once.
        Departure::Loss => usize::MAX,
    };
    let going = evacuate::to_start(&plan, under_way, group_of, &busy, &paused_keys, parallel);
    let entry = |m: &Move| PlannedMove { vm: m.vm.to_string(), to: m.to.clone(), strategy: m.how.as_str().into() };
    let planned: Vec<PlannedMove> = plan
        .moves
        .iter()
        .filter(|m| !going.iter().any(|g| g.vm == m.vm) && !paused_keys.contains(&m.vm))
        .map(entry)
        .collect();
    let blocked: Vec<BlockedMove> = (plan.blocked.iter().chain(&paused))
        .map(|b| BlockedMove { vm: b.vm.to_string(), reason: b.reason.clone() })
        .collect();
    let reason = match departure {
        Departure::Drain => "Drain",
        Departure::Loss => "Fenced",
    };
    let (state, condition) = if on_host.is_empty() {
        ("Complete", wanted(EVACUATED, true, "Complete", format!("no VM is left on {name}")))
    } else if going.is_empty() && planned.is_empty() && !blocked.is_empty() {
        let why: Vec<String> = blocked.iter().map(|b| format!("{}: {}", b.vm, b.reason)).collect();
        ("Blocked", wanted(EVACUATED, Status::False, "Blocked", why.join("; ")))
    } else {
        let message = format!("{} VM(s) left, {} moving", on_host.len(), going.len());
        ("Progressing", wanted(EVACUATED, Status::False, "Progressing", message))
    };
    let evacuation = Evacuation {
        reason: reason.into(),
        state: state.into(),
        remaining: u32::try_from(on_host.len()).unwrap_or(u32::MAX),
        moving: going.iter().map(entry).collect(),
        planned,
        blocked,
    };
    Some((evacuation, condition))
}
