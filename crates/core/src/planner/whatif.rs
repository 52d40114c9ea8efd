//! The two questions asked before buying or draining a server: how many more hosts of a
//! given shape make the layout fit, and can each host's VMs be re-placed if it is lost.

use super::evacuate::{Departure, as_planned, evacuate};
use super::search::SharedBudget;
use super::{HostModel, Plan, PlanInput, Res, SearchBudget, Verdict, plan_within};
use crate::key::ObjectKey;
use serde::Serialize;

/// The answer to `--add-hosts-like HOST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoreHosts {
    /// The host whose shape the new hosts copy.
    pub like: String,
    /// How many hosts of that shape to add so every VM is placed but those of `never_fit`;
    /// `None` when no number will do.
    pub add: Option<usize>,
    /// Whether `add` is proven the least: one fewer is ruled out by the totals or by a proof
    /// that no packing fits (not merely by a search that ran out of budget).
    pub proven_least: bool,
    /// The smallest count the totals alone allow (cores and memory), before any packing.
    pub lower_bound: usize,
    /// VMs that no number of such hosts can take (too large for an empty one, or constraints).
    pub never_fit: Vec<ObjectKey>,
    /// Violations adding hosts cannot cure (running VMs that overcommit, groups that do not fit their VM).
    pub not_about_hosts: usize,
}

/// Finds the fewest copies of `like` that make every VM placeable but those no copy can take.
/// Copies are new failure domains, with the template's labels. `None` when the template is not
/// in the layout.
pub fn hosts_needed(input: &PlanInput, like: &str, budget: SearchBudget) -> Option<MoreHosts> {
    let template = input.hosts.iter().find(|h| h.name == like)?.clone();
    // All the plans below share one budget's time.
    let budget = budget.shared();
    let base = plan_within(input, budget.next());
    let unplaced: Vec<&ObjectKey> = base.unplaced().map(|vm| &vm.vm).collect();
    let never_fit = never_fitting(input, &template, &unplaced, budget);
    let not_about_hosts = base.violations.len() - count_placement_violations(&base);

    // The VMs no such host takes are left out of the count: it answers for the others.
    let (others, base) = if never_fit.is_empty() {
        (input.clone(), base)
    } else {
        let others = PlanInput {
            vms: input.vms.iter().filter(|vm| !never_fit.contains(&vm.key)).cloned().collect(),
            ..input.clone()
        };
        let base = plan_within(&others, budget.next());
        (others, base)
    };
    let unplaced = base.unplaced().count();
    let lower_bound = lower_bound(&base, &template);
    let (add, proven_least) = if unplaced == 0 {
        (Some(0), true)
    } else {
        // Every added host takes at least one of the unplaced VMs (each fits an empty one),
        // so this many always suffice unless constraints interfere.
        let first = lower_bound.max(1);
        let ceiling = first + unplaced + others.hosts.len();
        // Fewer than `first` are ruled out by the totals (or, for one, by the base plan's own
        // verdict); each count that fails says whether its failure is proven.
        let mut proven = lower_bound >= 1 || matches!(base.verdict, Verdict::DoesNotFit { .. });
        let mut found = None;
        for k in first..=ceiling {
            let trial = plan_within(&with_copies(&others, &template, k), budget.next());
            if trial.unplaced().next().is_none() {
                found = Some(k);
                break;
            }
            proven = matches!(trial.verdict, Verdict::DoesNotFit { .. });
        }
        (found, found.is_some() && proven)
    };
    Some(MoreHosts { like: like.to_string(), add, proven_least, lower_bound, never_fit, not_about_hosts })
}

fn count_placement_violations(plan: &Plan) -> usize {
    let unplaced: std::collections::BTreeSet<super::Subject> =
        plan.unplaced().map(|vm| super::Subject::vm(&vm.vm)).collect();
    plan.violations.iter().filter(|v| unplaced.contains(&v.object)).count()
}

/// What the totals alone demand: enough hosts to cover the cores and memory left unplaced
/// after what already fits, rounded up.
fn lower_bound(base: &Plan, template: &HostModel) -> usize {
    let short = base.unplaced().fold(Res::ZERO, |sum, vm| sum + vm.demand)
        - base.hosts.iter().filter(|h| h.schedulable).fold(Res::ZERO, |sum, h| sum + h.free);
    let per_host = template.allocatable;
    let by = |need: u64, each: u64| if each == 0 { 0 } else { need.div_ceil(each) as usize };
    by(short.millicores, per_host.millicores).max(by(short.memory, per_host.memory))
}

/// Unplaced VMs that an empty copy of the template cannot hold whatever the count.
fn never_fitting(
    input: &PlanInput,
    template: &HostModel,
    unplaced: &[&ObjectKey],
    budget: SharedBudget,
) -> Vec<ObjectKey> {
    let empty = PlanInput { hosts: vec![copy(template, 0)], vms: Vec::new(), groups: Vec::new() };
    unplaced
        .iter()
        .copied()
        .filter(|&key| {
            let Some(vm) = input.vms.iter().find(|vm| vm.key == *key) else { return false };
            let mut alone = vm.clone();
            alone.pinned = None;
            alone.placed = None;
            let trial = PlanInput { vms: vec![alone], ..empty.clone() };
            plan_within(&trial, budget.next()).unplaced().next().is_some()
        })
        .cloned()
        .collect()
}

fn copy(template: &HostModel, n: usize) -> HostModel {
    let name = format!("{}+{n}", template.name);
    HostModel {
        node_name: format!("{}+{n}", template.node_name),
        failure_domain: name.clone(),
        schedulable: true,
        name,
        ..template.clone()
    }
}

fn with_copies(input: &PlanInput, template: &HostModel, count: usize) -> PlanInput {
    let mut extended = input.clone();
    extended.hosts.extend((1..=count).map(|n| copy(template, n)));
    extended
}

/// What losing one host does to its VMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostLoss {
    pub host: String,
    /// Its VMs that find a place on the other hosts, with that place.
    pub replaced: Vec<(ObjectKey, String)>,
    /// Its VMs that do not.
    pub stranded: Vec<ObjectKey>,
    /// How sure the re-placement's answer is.
    pub verdict: Verdict,
}

/// For each host: take it away, keep every other VM where the plan put it, and re-place the
/// lost host's VMs under the same constraints ([`evacuate`]). A VM pinned to the lost host, or
/// one that is never moved, is stranded.
pub fn host_loss(input: &PlanInput, base: &Plan, budget: SearchBudget) -> Vec<HostLoss> {
    // One budget's time for all the scenarios together.
    let budget = budget.shared();
    let planned = as_planned(input, base);
    base.hosts
        .iter()
        .map(|lost| {
            let loss = evacuate(&planned, &lost.name, Departure::Loss, budget.next());
            HostLoss {
                host: lost.name.clone(),
                replaced: loss.moves.into_iter().map(|m| (m.vm, m.to)).collect(),
                stranded: loss.blocked.into_iter().map(|b| b.vm).collect(),
                verdict: loss.verdict,
            }
        })
        .collect()
}
