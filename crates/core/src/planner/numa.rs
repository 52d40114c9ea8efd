//! Whether a host runs its VMs in every order their launchers can start in.
//!
//! The host's kubelet gives CPUs in arrival order ([`super::kubelet`]), so where a launcher
//! lands depends on the launchers before it, and a passthrough VM's guest memory follows its
//! vCPUs. The planner does not choose an order and the operator does not enforce one: a VM
//! restarts, a host reboots and its launchers race, a user deletes a pod. So a host holds a set
//! of VMs only when it holds them in every order they can arrive in; the walk below tries them
//! all, from an idle host, until one fails.
//!
//! It stays small: identical launchers are one shape with a count (their orders are the same
//! order), and a state reached with the same launchers left is walked once, whatever order led
//! to it. A walk longer than its budget is undecided, and the planner then refuses the VM (it
//! never plans what it has not checked).

use super::kubelet::{HostCells, Launcher, Misfit, State, admit, size_index};
use super::{Engine, HostModel, Refusal, VmModel};
use crate::key::ObjectKey;
use crate::quantity::HumanBytes;
use catalyst_api::host::{MemoryManagerPolicy, TopologyManagerPolicy};
use std::collections::HashSet;

/// Admissions one walk may simulate before it gives up.
pub const WALK_BUDGET: u64 = 20_000;

/// The answer for a set of launchers on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orders {
    /// Every order runs.
    Hold,
    /// An order in which the last launcher does not run, and why.
    Fail { order: Vec<Launcher>, misfit: Misfit },
    /// The budget ran out after this many admissions.
    Undecided(u64),
}

/// Whether anything but the totals can refuse `launcher` on the host: it is a passthrough VM
/// with hugepages (its memory is bound to its vCPUs' cells), or the host has a topology manager
/// that refuses misaligned pods or a memory manager that binds memory.
pub fn fallible(host: &HostCells, launcher: &Launcher) -> bool {
    matches!(host.policy, TopologyManagerPolicy::Restricted | TopologyManagerPolicy::SingleNumaNode)
        || host.memory_manager == MemoryManagerPolicy::Static
        || (launcher.passthrough && launcher.hugepages.is_some())
}

/// Whether any of `launchers` can be refused by anything but the totals: otherwise every
/// order runs.
pub fn matter(host: &HostCells, launchers: &[Launcher]) -> bool {
    launchers.iter().any(|l| fallible(host, l))
}

/// What of a launcher the host's rules read: without a memory manager its ordinary memory is
/// not placed; a launcher without hugepages or passthrough only takes CPUs. Launchers equal
/// here are one shape to the walk.
pub fn as_seen_by(host: &HostCells, launcher: &Launcher) -> Launcher {
    let memory = if host.memory_manager == MemoryManagerPolicy::Static { launcher.memory } else { 0 };
    if launcher.hugepages.is_none() && !launcher.passthrough {
        return Launcher { vcpus: 0, guest_threads: 1, memory, ..*launcher };
    }
    Launcher { memory, ..*launcher }
}

/// Whether every order surely runs, by bounds that hold whatever the order, without walking:
/// - the pages any hugepage VM can take from a cell (all of them, or a passthrough VM's largest
///   share: its pages over the fewest cells its vCPUs fit) add up to no more than the cell's
///   pool, so every strict binding finds its share;
/// - under a topology manager that refuses (`restricted`, `single-numa-node`), each launcher of
///   at most one cell's CPUs finds a cell with its CPUs free: the others cannot fill every cell
///   to less than its size (pigeonhole).
///
/// A memory manager's bindings and guest cores on SMT hosts are left to the walk. When the
/// bounds fail, the walk decides.
pub fn surely_holds(host: &HostCells, launchers: &[Launcher]) -> bool {
    if host.memory_manager == MemoryManagerPolicy::Static
        || (host.threads > 1 && launchers.iter().any(|l| l.passthrough && l.guest_threads > 1))
    {
        return false;
    }
    let cells = host.cores.len();
    // The most pages of each size a launcher can take from one cell.
    let largest_share = |l: &Launcher| -> Option<(usize, u64)> {
        let (size, pages) = l.hugepages?;
        if !l.passthrough {
            return Some((size_index(size), pages));
        }
        Some((size_index(size), pages.div_ceil(host.fewest_cells(l.vcpus) as u64)))
    };
    let pages_fit = (0..cells).all(|c| {
        (0..2).all(|i| {
            let worst: u64 =
                launchers.iter().filter_map(largest_share).filter(|&(size, _)| size == i).map(|(_, p)| p).sum();
            worst <= host.pools[c][i]
        })
    });
    if !pages_fit {
        return false;
    }
    if !matches!(host.policy, TopologyManagerPolicy::Restricted | TopologyManagerPolicy::SingleNumaNode) {
        return true;
    }
    let total: u32 = launchers.iter().map(|l| l.cpus).sum();
    launchers.iter().all(|l| {
        // Every cell kept below `l.cpus` free takes at least `usable - l.cpus + 1` of the others.
        let blocking: u32 = (0..cells).map(|c| (host.usable(c) + 1).saturating_sub(l.cpus)).sum();
        (0..cells).any(|c| host.usable(c) >= l.cpus) && total - l.cpus < blocking
    })
}

/// Tries every order of `launchers` on the idle host, one admission at a time, within `budget`
/// admissions.
pub fn walk(host: &HostCells, launchers: &[Launcher], budget: u64) -> Orders {
    let mut shapes: Vec<Launcher> = launchers.to_vec();
    shapes.sort();
    shapes.dedup();
    let counts = shapes.iter().map(|s| launchers.iter().filter(|l| *l == s).count() as u32).collect();
    let mut walk = Walk { host, shapes, counts, held: HashSet::new(), path: Vec::new(), admissions: 0, budget };
    match walk.from(&host.idle()) {
        Step::Holds => Orders::Hold,
        Step::Fails(misfit) => Orders::Fail { order: walk.path.iter().map(|&s| walk.shapes[s]).collect(), misfit },
        Step::OutOfBudget => Orders::Undecided(walk.admissions),
    }
}

enum Step {
    Holds,
    Fails(Misfit),
    OutOfBudget,
}

struct Walk<'h> {
    host: &'h HostCells,
    /// The distinct launchers, and how many of each are still to arrive.
    shapes: Vec<Launcher>,
    counts: Vec<u32>,
    /// (launchers left, state) from which every order is known to run.
    held: HashSet<(Vec<u32>, State)>,
    /// The shapes admitted so far on the current order.
    path: Vec<usize>,
    admissions: u64,
    budget: u64,
}

impl Walk<'_> {
    fn from(&mut self, state: &State) -> Step {
        // Once no launcher left can be refused, the rest run in any order.
        let fallible_left = (0..self.shapes.len()).any(|s| self.counts[s] > 0 && fallible(self.host, &self.shapes[s]));
        if !fallible_left || self.held.contains(&(self.counts.clone(), state.clone())) {
            return Step::Holds;
        }
        for s in 0..self.shapes.len() {
            if self.counts[s] == 0 {
                continue;
            }
            self.admissions += 1;
            if self.admissions > self.budget {
                return Step::OutOfBudget;
            }
            self.path.push(s);
            let next = match admit(self.host, state, &self.shapes[s]) {
                Ok((next, _)) => next,
                Err(misfit) => return Step::Fails(misfit),
            };
            self.counts[s] -= 1;
            let step = self.from(&next);
            self.counts[s] += 1;
            if !matches!(step, Step::Holds) {
                return step;
            }
            self.path.pop();
        }
        self.held.insert((self.counts.clone(), state.clone()));
        Step::Holds
    }
}

impl Engine<'_> {
    /// Whether host `h` runs `vm` beside its VMs in every order their launchers can start in.
    pub(super) fn cells_hold(&self, vm: &VmModel, h: usize) -> Result<(), Refusal> {
        self.cells_hold_beside(vm, h, &self.on_host[h])
    }

    /// Whether host `h` runs `vm` beside `others` in every order.
    pub(super) fn cells_hold_beside(&self, vm: &VmModel, h: usize, others: &[&VmModel]) -> Result<(), Refusal> {
        let host = self.hosts[h];
        let Some(cells) = &host.numa else { return Ok(()) };
        let threads = host.threads_per_core;
        let members: Vec<&VmModel> = others.iter().copied().chain(std::iter::once(vm)).collect();
        let seen = |m: &VmModel| as_seen_by(cells, &m.launcher(threads));
        let mut launchers: Vec<Launcher> = members.iter().map(|m| seen(m)).collect();
        if !matter(cells, &launchers) || surely_holds(cells, &launchers) {
            return Ok(());
        }
        launchers.sort();
        let key = (h, launchers);
        let cached = self.walks.borrow().get(&key).cloned();
        let orders = cached.unwrap_or_else(|| {
            let orders = walk(cells, &key.1, WALK_BUDGET);
            self.walks.borrow_mut().insert(key.clone(), orders.clone());
            orders
        });
        match orders {
            Orders::Hold => Ok(()),
            Orders::Undecided(admissions) => {
                self.undecided.set(true);
                Err(Refusal::Cells(Box::new(CellRefusal::Undecided { launchers: members.len(), admissions })))
            }
            Orders::Fail { order, misfit } => {
                // Name the VMs of the order: each shape is the first member of that shape not yet named.
                let mut unnamed = members.clone();
                let names = order
                    .iter()
                    .filter_map(|shape| {
                        let i = unnamed.iter().position(|m| seen(m) == *shape)?;
                        Some(unnamed.remove(i).key.clone())
                    })
                    .collect();
                let failing = *order.last().expect("a failing order has a last launcher");
                Err(Refusal::Cells(Box::new(CellRefusal::Fails { order: names, failing, misfit })))
            }
        }
    }
}

/// Why a host's cells refuse a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CellRefusal {
    /// When the launchers of `order` (VM keys) start in that order, the last does not run.
    Fails { order: Vec<ObjectKey>, failing: Launcher, misfit: Misfit },
    /// Too many orders to walk within the budget.
    Undecided { launchers: usize, admissions: u64 },
}

impl CellRefusal {
    /// What happens, and what would make it fit: the reason names the cells, the fix the field.
    pub(super) fn message(&self, vm: &VmModel, host: &HostModel) -> String {
        let (order, failing, misfit) = match self {
            Self::Fails { order, failing, misfit } => (order, failing, misfit),
            Self::Undecided { launchers, admissions } => {
                return format!(
                    "host {}'s {launchers} launchers can start in more orders than the planner checks ({admissions} \
                 admissions): it refuses what it has not checked; move a VM to another host, or give VMs the same \
                 shape (identical VMs are checked once)",
                    host.name
                );
            }
        };
        let last = order.last().unwrap_or(&vm.key);
        let alone = order.len() == 1;
        let when = if alone {
            format!("on host {}, even alone, {last} does not start", host.name)
        } else {
            format!(
                "on host {}, when the launchers start in the order {}, {last} does not start",
                host.name,
                order.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
        };
        let cells = host.numa.as_ref();
        let policy = cells.map(|c| c.policy).unwrap_or_default();
        let (reason, fix) = match misfit {
            Misfit::Pages { cell, size, need, free } if failing.passthrough => (
                format!(
                    "KubeVirt binds its guest memory strictly to the NUMA cells its vCPUs take, and asks {need} {} \
                     pages of cell {cell}, which has {free} free",
                    size.as_str()
                ),
                format!(
                    "drop numaPassthrough from {last} (its hugepages are then not bound to its cells), or shrink its \
                     memory to {} (what the pools of the cells its vCPUs need hold)",
                    HumanBytes(cells.map_or(0, |c| c.pools_for(failing)))
                ),
            ),
            Misfit::Pages { cell, size, need, free } => (
                format!(
                    "the host kubelet's memory manager (Static) binds its {need} {} pages to cells from cell {cell}, \
                     which hold {free}",
                    size.as_str()
                ),
                format!("shrink the memory of {last}"),
            ),
            Misfit::TopologyAffinity => (
                format!(
                    "the host kubelet's topology manager ({}) admits it only on the fewest NUMA cells that could \
                     hold it, and those lack free CPUs (TopologyAffinityError)",
                    policy.as_str()
                ),
                format!("shrink {last} to fit one cell's free CPUs"),
            ),
            Misfit::MemoryManager => (
                "the host kubelet's memory manager (Static) finds no NUMA cells with the free memory and hugepages \
                 it asks (UnexpectedAdmissionError)"
                    .to_string(),
                format!("shrink the memory of {last}"),
            ),
            Misfit::Cpus => ("its NUMA cells have too few free CPUs".to_string(), format!("shrink {last}")),
            Misfit::GuestCores => (
                "KubeVirt cannot pin its vCPUs as whole guest cores within one NUMA cell each".to_string(),
                format!("drop numaPassthrough from {last}"),
            ),
        };
        let fix = if alone {
            fix
        } else if policy == TopologyManagerPolicy::None && matches!(misfit, Misfit::Pages { .. }) {
            format!(
                "{fix}, give host {}'s kubelet topologyManagerPolicy best-effort or restricted (spec.kubelet: it keeps \
                 a launcher on one cell when one has its CPUs), or move another VM off host {}",
                host.name, host.name
            )
        } else {
            format!("{fix}, or move another VM off host {}", host.name)
        };
        format!("{when}: {reason}; {fix}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::kubelet::fixtures::{launcher, two_cells};
    use super::*;
    use catalyst_api::vm::HugepageSize;

    fn host(cores: u32, pages: u64) -> HostCells {
        two_cells(cores, pages, TopologyManagerPolicy::None)
    }

    /// Issue 21's host-3: a passthrough VM that fits a cell fits only if the VM before it left
    /// its cell the pages. Here `wide` spans both cells when it starts after `small`, and its
    /// half of the pages on cell 0 is more than `small` left there.
    #[test]
    fn an_order_that_splits_a_vm_over_the_cell_another_one_filled_fails() {
        let host = host(16, 32);
        let small = launcher(7, 30, true);
        let wide = launcher(14, 8, true);
        // Alone, each runs; `wide` first takes cell 0 (15 CPUs), `small` then cell 1.
        assert_eq!(walk(&host, &[wide], WALK_BUDGET), Orders::Hold);
        let Orders::Fail { order, misfit } = walk(&host, &[small, wide], WALK_BUDGET) else {
            panic!("small first leaves 8 CPUs on cell 0; wide takes them and 7 of cell 1")
        };
        assert_eq!(order, [small, wide]);
        assert_eq!(misfit, Misfit::Pages { cell: 0, size: HugepageSize::OneGibibyte, need: 4, free: 2 });
    }

    /// Without passthrough, hugepages are not bound to cells: any order runs.
    #[test]
    fn nothing_to_walk_when_no_launcher_is_bound_to_its_cells() {
        let host = host(16, 32);
        let loose = [launcher(7, 30, false), launcher(14, 8, false)];
        assert!(!matter(&host, &loose));
        assert_eq!(walk(&host, &loose, WALK_BUDGET), Orders::Hold);
    }

    /// Identical launchers are one shape: ten of them are one order, not ten factorial.
    #[test]
    fn identical_launchers_are_walked_once() {
        let host = host(64, 512);
        let same = vec![launcher(5, 10, true); 10];
        assert_eq!(walk(&host, &same, 10), Orders::Hold);
        let distinct: Vec<Launcher> = (1..=8).map(|v| launcher(v, v.into(), true)).collect();
        assert_eq!(walk(&host, &distinct, 100), Orders::Undecided(101));
        assert_eq!(walk(&host, &distinct, WALK_BUDGET), Orders::Hold);
        // The bounds alone say so: 36 pages at most on a cell of 512.
        assert!(surely_holds(&host, &distinct));
    }
}
