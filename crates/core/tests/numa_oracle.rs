//! `plan` against a plain simulation of what a host does with the VMs planned on it.
//!
//! The oracle is written apart from the planner's model, as directly as the upstream code
//! reads, on small hosts (single-thread cores, two or three cells):
//! - the host kubelet's static CPU manager (kubernetes v1.32 `cpu_assignment.go`,
//!   `takeByTopologyNUMAPacked`): whole free cells the request covers, then CPUs from the cells
//!   with the fewest free first, lowest ids first; its reserved CPUs the first of the lowest cells;
//! - with `topologyManagerPolicy: restricted`, the lowest of the smallest sets of cells whose
//!   capacity could hold the pod and whose free CPUs do, or a refusal;
//! - KubeVirt (v1.9.0 `vcpu.go`): vCPUs on the pod's CPUs in cell then id order, the emulator
//!   thread on the next; a passthrough VM's guest memory bound strictly to its vCPUs' cells in
//!   equal shares, the lower cells one page more; other guest memory from the emulator
//!   thread's cell first;
//! - the kernel's boot-time pools: the lower cells one page more.
//!
//! A host holds its VMs when every order of their launchers runs. The property: every host's
//! VMs in the plan hold, and when the plan leaves a VM out, no assignment of the VMs to hosts
//! within the hosts' totals holds on every host.

use catalyst_core::key::ObjectKey;
use catalyst_core::manifest;
use catalyst_core::planner::{self, Overhead, PlanInput, Res};
use catalyst_core::pool::HostPool;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Host {
    cells: usize,
    cpus_per_cell: usize,
    reserved: usize,
    pages: u64,
    restricted: bool,
}

#[derive(Debug, Clone)]
struct Vm {
    vcpus: usize,
    pages: u64,
    passthrough: bool,
}

impl Host {
    fn yaml(&self, i: usize) -> String {
        let cells = (0..self.cells)
            .map(|_| format!("    - cpu: {}\n      memory: 64Gi\n", self.cpus_per_cell))
            .collect::<String>();
        let kubelet = if self.restricted { "  kubelet:\n    topologyManagerPolicy: restricted\n" } else { "" };
        format!(
            "apiVersion: catalyst.io/v1alpha1\nkind: CatalystHost\nmetadata:\n  name: h{i}\nspec:\n  nodeName: n{i}\n  \
             capacity:\n    cpu: {}\n    memory: {}Gi\n  reserved:\n    cpu: {}\n    memory: 1Gi\n  numa:\n{cells}{kubelet}  \
             hugepages:\n    pages1Gi: {}\n",
            self.cells * self.cpus_per_cell,
            64 * self.cells,
            self.reserved,
            self.pages
        )
    }
}

impl Vm {
    fn yaml(&self, i: usize) -> String {
        format!(
            "apiVersion: catalyst.io/v1alpha1\nkind: CatalystVM\nmetadata:\n  name: v{i}\n  namespace: ns\nspec:\n  cpu: {}\n  \
             memory: {}Gi\n  hugepages: 1Gi\n  numaPassthrough: {}\n  bootDisk:\n    dataVolume:\n      \
             storageClassName: ceph-rbd\n      size: 20Gi\n      imageUrl: docker://quay.io/containerdisks/ubuntu:24.04\n  \
             node:\n    reservedMemory: 256Mi\n",
            self.vcpus, self.pages, self.passthrough
        )
    }
}

/// One host's state: each cell's CPUs (free or not) and free pages.
struct Machine {
    free: Vec<Vec<bool>>,
    pages: Vec<u64>,
}

impl Machine {
    fn idle(host: &Host) -> Self {
        let mut free = vec![vec![true; host.cpus_per_cell]; host.cells];
        // The kubelet's reserved CPUs: the lowest cells' first.
        let mut left = host.reserved;
        for cell in &mut free {
            for cpu in cell.iter_mut() {
                if left > 0 {
                    *cpu = false;
                    left -= 1;
                }
            }
        }
        let pages = (0..host.cells as u64)
            .map(|c| host.pages / host.cells as u64 + u64::from(c < host.pages % host.cells as u64))
            .collect();
        Self { free, pages }
    }

    fn free_in(&self, cell: usize) -> usize {
        self.free[cell].iter().filter(|&&f| f).count()
    }

    /// `takeByTopologyNUMAPacked` of `need` CPUs within `allowed` cells: (cell, cpu) taken.
    fn take(&mut self, allowed: &[usize], mut need: usize) -> Vec<(usize, usize)> {
        let mut taken = Vec::new();
        let by_free = |machine: &Machine| {
            let mut cells: Vec<usize> = allowed.to_vec();
            cells.sort_by_key(|&c| (machine.free_in(c), c));
            cells
        };
        for c in by_free(self) {
            let size = self.free[c].len();
            if self.free_in(c) == size && need >= size {
                taken.extend((0..size).map(|cpu| (c, cpu)));
                self.free[c] = vec![false; size];
                need -= size;
            }
        }
        for c in by_free(self) {
            for cpu in 0..self.free[c].len() {
                if need > 0 && self.free[c][cpu] {
                    self.free[c][cpu] = false;
                    taken.push((c, cpu));
                    need -= 1;
                }
            }
        }
        taken
    }

    /// Starts a VM's launcher: false when the kubelet refuses it or QEMU cannot have its memory.
    fn start(&mut self, host: &Host, vm: &Vm) -> bool {
        let need = vm.vcpus + 1;
        let all: Vec<usize> = (0..host.cells).collect();
        let mut pod = if host.restricted {
            // The fewest cells whose capacity could hold the pod, the lowest set with the CPUs free.
            let cells_needed = need.div_ceil(host.cpus_per_cell);
            let Some(cells) = subsets(host.cells, cells_needed)
                .into_iter()
                .find(|cells| cells.iter().map(|&c| self.free_in(c)).sum::<usize>() >= need)
            else {
                return false;
            };
            self.take(&cells, need)
        } else {
            self.take(&all, need)
        };
        if pod.len() < need {
            return false;
        }
        pod.sort_unstable();
        let emulator_cell = pod[vm.vcpus].0;
        if vm.passthrough {
            let mut cells: Vec<usize> = pod[..vm.vcpus].iter().map(|&(c, _)| c).collect();
            cells.dedup();
            let n = cells.len() as u64;
            for (k, &c) in cells.iter().enumerate() {
                let share = vm.pages / n + u64::from((k as u64) < vm.pages % n);
                if self.pages[c] < share {
                    return false;
                }
                self.pages[c] -= share;
            }
        } else {
            let mut left = vm.pages;
            for c in std::iter::once(emulator_cell).chain(all.into_iter().filter(|&c| c != emulator_cell)) {
                let here = left.min(self.pages[c]);
                self.pages[c] -= here;
                left -= here;
            }
            if left > 0 {
                return false;
            }
        }
        true
    }
}

/// The sets of `size` cells of `cells`, lowest first.
fn subsets(cells: usize, size: usize) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = (0u32..1 << cells)
        .filter(|m| m.count_ones() as usize == size)
        .map(|m| (0..cells).filter(|c| m & (1 << c) != 0).collect())
        .collect();
    all.sort();
    all
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

/// Whether `host` runs these VMs in every order.
fn holds(host: &Host, vms: &[&Vm]) -> bool {
    let indices: Vec<usize> = (0..vms.len()).collect();
    permutations(&indices).iter().all(|order| {
        let mut machine = Machine::idle(host);
        order.iter().all(|&v| machine.start(host, vms[v]))
    })
}

fn layout() -> impl Strategy<Value = (Vec<Host>, Vec<Vm>)> {
    let host = (2usize..=3, 2usize..=8, 0usize..=2, 0u64..=24, any::<bool>()).prop_map(
        |(cells, cpus_per_cell, reserved, pages, restricted)| Host {
            cells,
            cpus_per_cell,
            reserved,
            pages,
            restricted,
        },
    );
    let vm = (2usize..=8, 1u64..=12, prop::bool::weighted(0.7)).prop_map(|(vcpus, pages, passthrough)| Vm {
        vcpus,
        pages,
        passthrough,
    });
    (prop::collection::vec(host, 1..=2), prop::collection::vec(vm, 1..=4))
}

fn plan_of(hosts: &[Host], vms: &[Vm]) -> planner::Plan {
    let text: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| h.yaml(i))
        .chain(vms.iter().enumerate().map(|(i, v)| v.yaml(i)))
        .collect();
    let (manifests, errors) = manifest::parse("layout.yaml", &text.join("---\n"));
    assert!(errors.is_empty(), "{errors:?}");
    planner::plan(&PlanInput::from_manifests(&manifests, &Overhead::default(), &HostPool::parse("").unwrap()))
}

/// Whether some assignment of every VM to a host, within each host's totals, holds everywhere.
fn some_assignment_holds(hosts: &[Host], vms: &[Vm], plan: &planner::Plan) -> bool {
    let demand = |v: usize| {
        plan.vms
            .iter()
            .find(|p| p.vm == ObjectKey::namespaced("ns", format!("v{v}")))
            .expect("every VM is planned")
            .demand
    };
    let allocatable = |h: usize| plan.hosts.iter().find(|p| p.name == format!("h{h}")).expect("every host").allocatable;
    let assignments = hosts.len().pow(vms.len() as u32);
    (0..assignments).any(|mut code| {
        let mut on: Vec<Vec<usize>> = vec![Vec::new(); hosts.len()];
        for v in 0..vms.len() {
            on[code % hosts.len()].push(v);
            code /= hosts.len();
        }
        on.iter().enumerate().all(|(h, members)| {
            let total = members.iter().fold(Res::ZERO, |sum, &v| sum + demand(v));
            allocatable(h).covers(&total) && holds(&hosts[h], &members.iter().map(|&v| &vms[v]).collect::<Vec<_>>())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn plan_agrees_with_a_plain_simulation_of_the_host((hosts, vms) in layout()) {
        let plan = plan_of(&hosts, &vms);
        for (h, host) in hosts.iter().enumerate() {
            let placed: Vec<&Vm> = plan.hosts[h].vms.iter().map(|key| &vms[key.name()["v".len()..].parse::<usize>().unwrap()]).collect();
            prop_assert!(holds(host, &placed), "plan puts {:?} on h{h} ({host:?}), which fails in some order", plan.hosts[h].vms);
        }
        if !plan.fits {
            prop_assert!(
                !some_assignment_holds(&hosts, &vms, &plan),
                "plan refuses a layout the simulation runs: {:?}", plan.violations
            );
        }
    }
}
