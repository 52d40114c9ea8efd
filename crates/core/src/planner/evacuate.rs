//! Where a host's VMs go when it must be emptied: drained for maintenance (each VM moves as its
//! `moveStrategy` says, live where it can) or lost after fencing (each restarts elsewhere). The
//! other VMs stay where they are; the leaving ones are planned again on the other hosts under
//! every constraint the planner knows (spread groups and failure domains, selectors, NUMA
//! cells in every launch order, hugepages, SMT). Used by the operator for each step of a drain
//! or a fenced host's recovery, and offline by `plan --drain` and `plan --lose`.

use super::model::Moves;
use super::{Plan, PlanInput, SearchBudget, Subject, Verdict, plan_within, reasons};
use crate::key::ObjectKey;
use serde::Serialize;

/// Why a host is emptied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Maintenance: the host runs, takes no new VMs, and its VMs move off it.
    Drain,
    /// Fenced: the host is gone, its VMs are down and start again elsewhere.
    Loss,
}

/// How a VM goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum How {
    LiveMigrate,
    Restart,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::LiveMigrate => "LiveMigrate",
            How::Restart => "Restart",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub vm: ObjectKey,
    pub to: String,
    pub how: How,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocked {
    pub vm: ObjectKey,
    pub reason: String,
}

/// The host's VMs: where each goes, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evacuation {
    pub host: String,
    /// In the order the planner placed them: the largest first.
    pub moves: Vec<Move>,
    pub blocked: Vec<Blocked>,
    /// How sure the answer for the blocked ones is.
    pub verdict: Verdict,
}

impl Evacuation {
    pub fn complete(&self) -> bool {
        self.blocked.is_empty()
    }
}

/// `input` with every VM the plan placed marked as running where the plan put it, as a what-if
/// about a planned layout sees it; the VMs it left out are left out.
pub fn as_planned(input: &PlanInput, plan: &Plan) -> PlanInput {
    let placed_on: std::collections::HashMap<&ObjectKey, &str> =
        plan.vms.iter().filter_map(|vm| Some((&vm.vm, vm.host.as_deref()?))).collect();
    let vms = input
        .vms
        .iter()
        .filter_map(|vm| {
            let mut placed = vm.clone();
            placed.placed = Some(placed_on.get(&vm.key)?.to_string());
            Some(placed)
        })
        .collect();
    PlanInput { hosts: input.hosts.clone(), vms, groups: Vec::new() }
}

/// Empties `host` of the VMs `input` places on it (`placed`), keeping every other VM where it
/// is. A VM whose `moveStrategy` is `None`, or which `spec.host` pins to the host, stays and is
/// blocked; so is, in a drain, a VM asked to live-migrate that cannot.
pub fn evacuate(input: &PlanInput, host: &str, departure: Departure, budget: SearchBudget) -> Evacuation {
    let mut scenario = input.clone();
    match departure {
        Departure::Drain => scenario.hosts.iter_mut().filter(|h| h.name == host).for_each(|h| h.schedulable = false),
        Departure::Loss => scenario.hosts.retain(|h| h.name != host),
    }
    let mut blocked = Vec::new();
    let mut leaving = Vec::new();
    scenario.vms.retain_mut(|vm| {
        if vm.placed.as_deref() != Some(host) {
            return true;
        }
        let stays = if vm.moves == Moves::Never {
            Some("its moveStrategy is None: the operator never moves it; move or delete it by hand".to_string())
        } else if vm.pinned.as_deref() == Some(host) {
            Some(format!("spec.host pins it to {host}: remove the pin to let it move"))
        } else if departure == Departure::Drain && vm.moves == Moves::LiveMigrate {
            vm.migration_blocker.as_ref().map(|why| format!("its moveStrategy is LiveMigrate, but {why}"))
        } else {
            None
        };
        match stays {
            Some(reason) => {
                blocked.push(Blocked { vm: vm.key.clone(), reason });
                // Drained, it stays on its host; lost, it is down and out of the plan.
                departure == Departure::Drain
            }
            None => {
                leaving.push((vm.key.clone(), vm.moves));
                vm.placed = None;
                true
            }
        }
    });
    let plan = plan_within(&scenario, budget);
    let mut moves = Vec::new();
    for placed in &plan.vms {
        let Some(&(_, moves_as)) = leaving.iter().find(|(key, _)| *key == placed.vm) else { continue };
        match &placed.host {
            Some(to) => {
                let how = match (departure, moves_as) {
                    (Departure::Drain, Moves::LiveMigrate) => How::LiveMigrate,
                    _ => How::Restart,
                };
                moves.push(Move { vm: placed.vm.clone(), to: to.clone(), how });
            }
            None => blocked.push(Blocked {
                vm: placed.vm.clone(),
                reason: format!("no other host takes it: {}", reasons(&plan.violations, &Subject::vm(&placed.vm))),
            }),
        }
    }
    blocked.sort_by(|a, b| a.vm.cmp(&b.vm));
    Evacuation { host: host.to_string(), moves, blocked, verdict: plan.verdict }
}

/// The moves that go now: those `under_way`, then the plan's next ones, until `parallel` go at
/// once; never two VMs of one spread group (`group_of`; `busy` holds the groups with a member
/// moving anywhere), never a VM that must wait (`paused`).
pub fn to_start(
    plan: &Evacuation,
    under_way: Vec<Move>,
    group_of: impl Fn(&ObjectKey) -> Option<ObjectKey>,
    busy: &std::collections::BTreeSet<ObjectKey>,
    paused: &std::collections::BTreeSet<ObjectKey>,
    parallel: usize,
) -> Vec<Move> {
    let mut busy = busy.clone();
    busy.extend(under_way.iter().filter_map(|m| group_of(&m.vm)));
    let mut going = under_way;
    for next in &plan.moves {
        if going.len() >= parallel {
            break;
        }
        if paused.contains(&next.vm) || going.iter().any(|m| m.vm == next.vm) {
            continue;
        }
        let group = group_of(&next.vm);
        if group.as_ref().is_some_and(|g| busy.contains(g)) {
            continue;
        }
        busy.extend(group);
        going.push(next.clone());
    }
    going
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::tests::{host, key, spread, vm};

    fn placed(mut vm: crate::planner::VmModel, on: &str) -> crate::planner::VmModel {
        vm.placed = Some(on.into());
        vm
    }

    /// Three hosts of 20 cores; `a` holds two VMs of a spread group's members and a loose one.
    fn layout() -> PlanInput {
        PlanInput {
            hosts: vec![host("a", 20, 100), host("b", 20, 100), host("c", 20, 100)],
            vms: vec![
                placed(spread(vm("web-1", 8, 8), "web"), "a"),
                placed(vm("db", 10, 8), "a"),
                placed(spread(vm("web-2", 8, 8), "web"), "b"),
                placed(vm("cache", 12, 8), "c"),
            ],
            groups: Vec::new(),
        }
    }

    #[test]
    fn a_drain_moves_each_vm_within_the_constraints_and_keeps_the_rest() {
        let drain = evacuate(&layout(), "a", Departure::Drain, SearchBudget::default());
        // web-1 may not join web-2 on b; db (10) fits b (12 free) but then web-1 (8) needs c.
        assert_eq!(
            drain.moves,
            [
                Move { vm: key("db"), to: "b".into(), how: How::LiveMigrate },
                Move { vm: key("web-1"), to: "c".into(), how: How::LiveMigrate },
            ]
        );
        assert!(drain.complete());
    }

    #[test]
    fn a_vm_that_may_not_or_cannot_move_is_blocked_and_says_why() {
        let mut input = layout();
        input.vms[1].moves = Moves::Never;
        input.vms[0].pinned = Some("a".into());
        let drain = evacuate(&input, "a", Departure::Drain, SearchBudget::default());
        assert!(drain.moves.is_empty());
        let reasons: Vec<&str> = drain.blocked.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "its moveStrategy is None: the operator never moves it; move or delete it by hand",
                "spec.host pins it to a: remove the pin to let it move"
            ]
        );
        // No room: a fourth VM on a fills what b and c have left.
        let mut full = layout();
        full.vms.push(placed(vm("big", 20, 8), "b"));
        full.hosts[1] = host("b", 40, 100);
        full.vms.push(placed(vm("bigger", 8, 8), "c"));
        let drain = evacuate(&full, "a", Departure::Drain, SearchBudget::default());
        assert!(!drain.complete());
        assert!(drain.blocked.iter().all(|b| b.reason.starts_with("no other host takes it")), "{:?}", drain.blocked);
    }

    #[test]
    fn moves_go_one_at_a_time_and_never_two_of_a_spread_group() {
        let mv = |vm: &str| Move { vm: key(vm), to: "b".into(), how: How::LiveMigrate };
        let plan = Evacuation {
            host: "a".into(),
            moves: vec![mv("web-1"), mv("web-2"), mv("db"), mv("cache")],
            blocked: Vec::new(),
            verdict: Verdict::Fits,
        };
        let group = |vm: &ObjectKey| vm.name().starts_with("web").then(|| key("web"));
        let none = std::collections::BTreeSet::new();
        let vms = |moves: Vec<Move>| moves.into_iter().map(|m| m.vm.name().to_string()).collect::<Vec<_>>();
        assert_eq!(vms(to_start(&plan, Vec::new(), group, &none, &none, 1)), ["web-1"]);
        assert_eq!(vms(to_start(&plan, vec![mv("web-1")], group, &none, &none, 1)), ["web-1"], "one at a time");
        assert_eq!(vms(to_start(&plan, Vec::new(), group, &none, &none, 3)), ["web-1", "db", "cache"], "web-2 waits");
        let busy = std::collections::BTreeSet::from([key("web")]);
        let paused = std::collections::BTreeSet::from([key("db")]);
        assert_eq!(vms(to_start(&plan, Vec::new(), group, &busy, &paused, 3)), ["cache"]);
    }

    #[test]
    fn a_lost_hosts_vms_restart_elsewhere_and_a_vm_that_cannot_migrate_restarts_in_a_drain() {
        let loss = evacuate(&layout(), "a", Departure::Loss, SearchBudget::default());
        assert!(loss.moves.iter().all(|m| m.how == How::Restart), "{:?}", loss.moves);
        assert_eq!(loss.moves.len(), 2);
        let mut input = layout();
        input.vms[1].moves = Moves::Restart;
        let drain = evacuate(&input, "a", Departure::Drain, SearchBudget::default());
        assert_eq!(drain.moves.iter().find(|m| m.vm == key("db")).unwrap().how, How::Restart);
        // Asked to live-migrate, a VM on the pod network cannot: blocked in a drain.
        input.vms[1].moves = Moves::LiveMigrate;
        input.vms[1].migration_blocker = Some("its interface is bridged on the pod network".into());
        let drain = evacuate(&input, "a", Departure::Drain, SearchBudget::default());
        assert_eq!(drain.blocked[0].vm, key("db"));
        assert!(drain.blocked[0].reason.starts_with("its moveStrategy is LiveMigrate, but its interface"));
    }
}
