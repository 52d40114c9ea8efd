//! Exact placement when the heuristic leaves a VM out: a depth-first branch and bound over
//! hosts that either finds a packing of every VM, proves that none exists, or says it ran out
//! of its budget. `plan` is a merge gate, so it must never refuse a layout that fits.
//!
//! The search places the VMs the heuristic placed freely (not the running or pinned ones,
//! which it keeps where they are), largest first, each on every host that passes every
//! constraint the heuristic checks (capacity, NUMA cells, spread groups and failure domains,
//! host selectors, cordoned hosts), tightest host first. What keeps it small:
//! - **Bounds at the root** that prove a misfit outright: the VMs need more cores or memory
//!   than the hosts have free; one VM fits no host even on its own; a spread group has more
//!   members than failure domains that could hold them.
//! - **A bound at every node**: the VMs still to place need no more cores and memory than the
//!   hosts have free, not counting hosts too full for the smallest of them (their room is
//!   wasted whatever comes next).
//! - **Symmetry breaking**: hosts in the same state (free room, the same launchers on the same
//!   cells, labels, alone in their failure domain, the same spread groups there) are
//!   interchangeable, so one of them is tried; identical VMs take hosts in index order, so their
//!   permutations are not retried.
//!
//! The NUMA cells a VM takes within a host are not the planner's choice but the host kubelet's,
//! in the order the launchers arrive: each candidate host is checked by walking every order of
//! its launchers ([`super::numa`]), so the search covers cells by covering every way the
//! kubelet can fill them. A walk that runs out of its budget makes the search's answer "not
//! found within the budget", never "impossible".

use super::{Engine, Res, VmModel};
use crate::key::ObjectKey;
use std::time::{Duration, Instant};

/// How much searching a plan may do before it answers "not found within the budget".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchBudget {
    /// Placements tried.
    pub nodes: u64,
    /// Wall-clock time.
    #[serde(with = "millis")]
    pub time: Duration,
}

impl Default for SearchBudget {
    /// Keeps `plan` interactive: about a second of search at most.
    fn default() -> Self {
        Self { nodes: 2_000_000, time: Duration::from_secs(1) }
    }
}

impl SearchBudget {
    /// A clock for several plans that share this budget's time: each gets what is left.
    pub fn shared(self) -> SharedBudget {
        SharedBudget { budget: self, deadline: Instant::now() + self.time }
    }
}

/// One search budget spread over several plans (the what-ifs of one `plan` command), so that
/// their searches together take no longer than the budget's time.
#[derive(Debug, Clone, Copy)]
pub struct SharedBudget {
    budget: SearchBudget,
    deadline: Instant,
}

impl SharedBudget {
    /// The budget of the next plan: the same placements, the time left.
    pub fn next(&self) -> SearchBudget {
        SearchBudget { time: self.deadline.saturating_duration_since(Instant::now()), ..self.budget }
    }
}

mod millis {
    pub fn serialize<S: serde::Serializer>(duration: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(duration.as_millis() as u64)
    }
}

/// One VM on one host: (VM index, host index).
pub type Placement = (usize, usize);

/// What the search concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every VM placed: `(vm index, host index)` in placement order.
    Packed(Vec<Placement>),
    /// No packing exists; why.
    Impossible(String),
    /// The budget ran out after this many placements.
    OutOfBudget(u64),
}

/// Searches for a packing of `vms` (indices into `all`) onto the engine's hosts, from the
/// engine's current state, which it leaves as it found it.
pub(super) fn pack<'a>(engine: &mut Engine<'a>, all: &[&'a VmModel], vms: &[usize], budget: SearchBudget) -> Outcome {
    engine.undecided.set(false);
    if let Some(proof) = root_bounds(engine, all, vms) {
        return if engine.undecided.get() { Outcome::OutOfBudget(0) } else { Outcome::Impossible(proof) };
    }
    let mut order = vms.to_vec();
    // Largest first, as the heuristic; identical VMs end up next to each other.
    order.sort_by(|&a, &b| super::size_order(all[a], all[b]).then(a.cmp(&b)));
    // The smallest of each resource among the VMs from each depth on.
    let unbounded = Res { millicores: u64::MAX, memory: u64::MAX, hugepages_1gi: u64::MAX, hugepages_2mi: u64::MAX };
    let mut smallest = vec![unbounded; order.len() + 1];
    for depth in (0..order.len()).rev() {
        smallest[depth] = smallest[depth + 1].min_each(&all[order[depth]].demand);
    }
    let alone = (0..engine.hosts.len())
        .map(|h| engine.domain.iter().filter(|&&d| d == engine.domain[h]).count() == 1)
        .collect();
    let mut search = Search {
        all,
        order,
        smallest,
        alone,
        budget,
        started: Instant::now(),
        nodes: 0,
        out_of_budget: false,
        chosen: Vec::new(),
        remaining: vms.iter().fold(Res::ZERO, |sum, &v| sum + all[v].demand),
    };
    if search.dfs(engine, 0, 0) {
        let packed = std::mem::take(&mut search.chosen);
        // Leave the engine as it was found; the caller commits the packing.
        for &(v, h) in packed.iter().rev() {
            engine.uncommit(all[v], h);
        }
        return Outcome::Packed(packed);
    }
    if search.out_of_budget || engine.undecided.get() {
        Outcome::OutOfBudget(search.nodes)
    } else {
        Outcome::Impossible(format!(
            "an exhaustive search of {} placement(s) found no packing of the {} VM(s) the heuristic could not all place",
            search.nodes,
            vms.len()
        ))
    }
}

/// A proof, from the totals alone, that no packing exists.
fn root_bounds(engine: &Engine, all: &[&VmModel], vms: &[usize]) -> Option<String> {
    let schedulable: Vec<usize> = (0..engine.hosts.len()).filter(|&h| engine.hosts[h].schedulable).collect();
    let free = schedulable.iter().fold(Res::ZERO, |sum, &h| sum + engine.free(h));
    let needed = vms.iter().fold(Res::ZERO, |sum, &v| sum + all[v].demand);
    if !free.covers(&needed) {
        return Some(format!("capacity bound: the VMs to place need {needed}, the schedulable hosts have {free} free"));
    }
    for &v in vms {
        if !schedulable.iter().any(|&h| engine.check(all[v], h).is_ok()) {
            return Some(format!("CatalystVM {} fits no host, even placed first", all[v].key));
        }
    }
    spread_bound(engine, all, vms)
}

/// A spread group needs a failure domain per member: more members than domains that could
/// take one of them is a misfit.
fn spread_bound(engine: &Engine, all: &[&VmModel], vms: &[usize]) -> Option<String> {
    let mut groups: std::collections::BTreeMap<&ObjectKey, Vec<usize>> = std::collections::BTreeMap::new();
    for &v in vms {
        if let Some(group) = &all[v].spread_group {
            groups.entry(group).or_default().push(v);
        }
    }
    for (group, members) in groups {
        let mut domains: Vec<usize> = (0..engine.hosts.len())
            .filter(|&h| members.iter().any(|&v| engine.check(all[v], h).is_ok()))
            .map(|h| engine.domain[h])
            .collect();
        domains.sort_unstable();
        domains.dedup();
        if domains.len() < members.len() {
            return Some(format!(
                "spread bound: spread group {group} has {} member(s) to place and only {} failure domain(s) could take one",
                members.len(),
                domains.len()
            ));
        }
    }
    None
}

struct Search<'s, 'a> {
    all: &'s [&'a VmModel],
    /// The VMs to place, in the order they are placed.
    order: Vec<usize>,
    /// The smallest of each resource among `order[depth..]`.
    smallest: Vec<Res>,
    /// Whether each host is alone in its failure domain.
    alone: Vec<bool>,
    budget: SearchBudget,
    started: Instant,
    nodes: u64,
    out_of_budget: bool,
    chosen: Vec<Placement>,
    /// What the VMs not yet placed need.
    remaining: Res,
}

impl<'a> Search<'_, 'a> {
    /// Places `order[depth..]`; `floor` is the lowest host index the VM at `depth` may take
    /// when it is identical to the one before it.
    fn dfs(&mut self, engine: &mut Engine<'a>, depth: usize, floor: usize) -> bool {
        if depth == self.order.len() {
            return true;
        }
        self.nodes += 1;
        if self.nodes > self.budget.nodes
            || (self.nodes.is_multiple_of(1024) && self.started.elapsed() > self.budget.time)
        {
            self.out_of_budget = true;
            return false;
        }
        let smallest = self.smallest[depth];
        let usable = (0..engine.hosts.len())
            .filter(|&h| engine.hosts[h].schedulable)
            .map(|h| engine.free(h))
            .filter(|free| free.covers(&smallest))
            .fold(Res::ZERO, |sum, free| sum + free);
        if !usable.covers(&self.remaining) {
            return false;
        }
        let v = self.order[depth];
        let vm = self.all[v];
        for h in self.candidates(engine, vm, floor) {
            engine.commit(vm, h);
            self.remaining = self.remaining - vm.demand;
            self.chosen.push((v, h));
            let next_floor = match self.order.get(depth + 1) {
                Some(&next) if interchangeable(vm, self.all[next]) => h,
                _ => 0,
            };
            if self.dfs(engine, depth + 1, next_floor) {
                return true;
            }
            self.chosen.pop();
            self.remaining += vm.demand;
            engine.uncommit(vm, h);
            if self.out_of_budget {
                return false;
            }
        }
        false
    }

    /// The hosts (from `floor` on) that take the VM, tightest first, one per class of hosts in
    /// the same state.
    fn candidates(&self, engine: &Engine, vm: &VmModel, floor: usize) -> Vec<usize> {
        let mut found: Vec<(Res, usize)> = Vec::new();
        let mut classes: Vec<HostState> = Vec::new();
        for h in floor..engine.hosts.len() {
            if engine.check(vm, h).is_err() {
                continue;
            }
            let state = HostState::of(engine, h, self.alone[h]);
            if state.alone_in_domain && classes.contains(&state) {
                continue;
            }
            classes.push(state);
            found.push((engine.free(h), h));
        }
        found.sort_unstable();
        found.into_iter().map(|(_, h)| h).collect()
    }
}

/// Two VMs the search may swap without changing anything: same demand and constraints.
fn interchangeable(a: &VmModel, b: &VmModel) -> bool {
    a.demand == b.demand
        && a.spread_group == b.spread_group
        && a.host_selector == b.host_selector
        && a.passthrough == b.passthrough
        && a.hugepages == b.hugepages
        && a.pinned_cpus == b.pinned_cpus
        && a.vcpus == b.vcpus
}

/// What makes a host a different choice from another for the VMs still to place.
#[derive(PartialEq)]
struct HostState {
    free: Res,
    /// The launchers on its cells (sorted), when it declares cells: what decides their state.
    launchers: Vec<super::Launcher>,
    labels: std::collections::BTreeMap<String, String>,
    allocatable: Res,
    /// Spread groups with a member in the host's failure domain.
    groups: Vec<String>,
    /// The only host of its failure domain: otherwise it is never merged with another.
    alone_in_domain: bool,
}

impl HostState {
    fn of(engine: &Engine, h: usize, alone_in_domain: bool) -> Self {
        let domain = engine.domain[h];
        let mut groups: Vec<String> = engine
            .spread
            .iter()
            .filter(|(_, domains)| domains.contains(&domain))
            .map(|(group, _)| group.to_string())
            .collect();
        groups.sort();
        Self {
            free: engine.free(h),
            launchers: {
                let host = engine.hosts[h];
                let mut launchers: Vec<super::Launcher> = match &host.numa {
                    Some(cells) => engine.on_host[h]
                        .iter()
                        .map(|vm| super::numa::as_seen_by(cells, &vm.launcher(host.threads_per_core)))
                        .collect(),
                    None => Vec::new(),
                };
                launchers.sort_unstable();
                launchers
            },
            labels: engine.hosts[h].labels.clone(),
            allocatable: engine.hosts[h].allocatable,
            groups,
            alone_in_domain,
        }
    }
}
