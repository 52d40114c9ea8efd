//! Where a running NUMA-passthrough VM's guest memory is, from its host's report: the cells its
//! launcher's vCPUs took, and whether those cells' hugepage pools are the ones the plan counted
//! and hold the guest's share. The `NumaPlaced` verdict: the plan holds only on the premises it
//! was made on (the host's pools per cell, its kubelet's topology manager), and this is where
//! the operator finds out whether the host keeps them.

use crate::cpuset::CpuSet;
use crate::pinning::NodeCpus;
use crate::planner::{HostCells, VmModel};
use catalyst_api::host::TopologyManagerPolicy;
use catalyst_api::vm::HugepageSize;

/// What the comparison found: the condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The guest memory's share on each cell of its vCPUs fits that cell's pool, and the pools
    /// are the plan's.
    WithinPools,
    /// A cell of its vCPUs holds fewer pages than the plan counted: the host boots other pools
    /// than `spec.hugepages` (or `numa[].hugepages`) says.
    PoolsDiffer,
    /// A cell of its vCPUs holds fewer pages than the guest's share there.
    OutsidePools,
    /// Its launcher spans cells where the topology manager `spec.kubelet` names would have kept
    /// it on one: the host's kubelet runs another policy.
    PolicyDiffers,
    /// The report shows no pools (an agent that does not read them) or no cells.
    NoPools,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WithinPools => "WithinPools",
            Reason::PoolsDiffer => "PoolsDiffer",
            Reason::OutsidePools => "OutsidePools",
            Reason::PolicyDiffers => "PolicyDiffers",
            Reason::NoPools => "NoPools",
        }
    }
}

/// The verdict: its reason, a message that names the cells and pages, and the cells of its vCPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    pub message: String,
    pub cells: Vec<u32>,
}

/// Compares a passthrough VM whose launcher holds `cpus` on the host whose report is `report`
/// with the plan of that host (`host`, from its spec). KubeVirt pins the vCPUs to the pod's
/// CPUs cell by cell, in the order of their ids (`vcpu.go`, `fitCPUBound`; on an SMT host it
/// takes sibling pairs first, which this reading does not tell apart), and binds the guest
/// memory to those cells in equal shares, the lower cells one page more (`numaMapping`).
pub fn check(report: &NodeCpus, cpus: &CpuSet, vm: &VmModel, host: &HostCells) -> Verdict {
    let Some((size, pages)) = vm.hugepages else {
        return verdict(Reason::NoPools, "its guest memory is not in hugepages".into(), Vec::new());
    };
    let mut placed: Vec<(u32, u32)> = cpus.iter().filter_map(|cpu| Some((report.cell_of(cpu)?, cpu))).collect();
    placed.sort_unstable();
    let all_cells: Vec<u32> = dedup(placed.iter().map(|&(cell, _)| cell));
    let cells: Vec<u32> = dedup(placed.iter().take(vm.vcpus as usize).map(|&(cell, _)| cell));
    if cells.is_empty() {
        return verdict(Reason::NoPools, "its host's report shows no NUMA cells for its CPUs".into(), cells);
    }
    let one_cell_would_do = host.cores.iter().any(|&cores| cores * host.threads >= vm.pinned_cpus as u32);
    if matches!(host.policy, TopologyManagerPolicy::Restricted | TopologyManagerPolicy::SingleNumaNode)
        && one_cell_would_do
        && all_cells.len() > 1
    {
        let message = format!(
            "its launcher holds CPUs {cpus} on NUMA cells {}, but a kubelet with topologyManagerPolicy {} (as \
             spec.kubelet says) keeps it on one: the host's kubelet runs another policy, and the plan's premise \
             fails",
            list(&all_cells),
            host.policy.as_str()
        );
        return verdict(Reason::PolicyDiffers, message, cells);
    }
    let n = cells.len() as u64;
    for (k, &cell) in cells.iter().enumerate() {
        let share = pages / n + u64::from((k as u64) < pages % n);
        let Some(pool) = report.pool(cell, size.as_str()) else {
            let message = format!("its host's report shows no {} pool on NUMA cell {cell}", size.as_str());
            return verdict(Reason::NoPools, message, cells);
        };
        let planned = planned_pool(host, cell, size);
        if pool.total < planned {
            let message = format!(
                "NUMA cell {cell} holds {} {} pages, the plan counts {planned} (spec.hugepages, spread as the kernel \
                 spreads them, or numa[].hugepages): set the cells' pools as the host boots them",
                pool.total,
                size.as_str()
            );
            return verdict(Reason::PoolsDiffer, message, cells);
        }
        if pool.total < share {
            let message = format!(
                "its vCPUs are on NUMA cells {} and its guest memory is bound there, {share} {} pages on cell {cell}, \
                 which holds {}",
                list(&cells),
                size.as_str(),
                pool.total
            );
            return verdict(Reason::OutsidePools, message, cells);
        }
    }
    let message = format!(
        "its vCPUs are on NUMA cells {} and its {pages} {} pages within their pools, as planned",
        list(&cells),
        size.as_str()
    );
    verdict(Reason::WithinPools, message, cells)
}

fn planned_pool(host: &HostCells, cell: u32, size: HugepageSize) -> u64 {
    let index = match size {
        HugepageSize::OneGibibyte => 0,
        HugepageSize::TwoMebibytes => 1,
    };
    host.pools.get(cell as usize).map_or(0, |pool| pool[index])
}

fn verdict(reason: Reason, message: String, cells: Vec<u32>) -> Verdict {
    Verdict { reason, message, cells }
}

fn dedup(cells: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut cells: Vec<u32> = cells.collect();
    cells.dedup();
    cells
}

fn list(cells: &[u32]) -> String {
    cells.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::Res;
    use catalyst_api::CatalystNodeReportSpec;
    use catalyst_api::host::MemoryManagerPolicy;
    use catalyst_api::report::{CellHugepages, NumaCell};

    /// Two cells of 16 CPUs; `pools` 1Gi pages on each as the host really has them.
    fn report(pools: [u64; 2]) -> NodeCpus {
        let cell = |id: u32, cpus: &str, total: u64| NumaCell {
            id,
            cpus: cpus.into(),
            hugepages: vec![CellHugepages { size: "1Gi".into(), total, free: 0 }],
        };
        NodeCpus::read(&CatalystNodeReportSpec {
            allocatable_cpus: "0-31".into(),
            numa: vec![cell(0, "0-15", pools[0]), cell(1, "16-31", pools[1])],
            ..CatalystNodeReportSpec::default()
        })
        .unwrap()
    }

    /// The plan's host: 16 pages per cell.
    fn host(policy: TopologyManagerPolicy) -> HostCells {
        HostCells {
            threads: 1,
            cores: vec![16, 16],
            reserved: vec![0, 0],
            pools: vec![[16, 0], [16, 0]],
            memory: vec![1 << 40; 2],
            policy,
            memory_manager: MemoryManagerPolicy::None,
        }
    }

    fn vm(vcpus: u64, pages: u64) -> VmModel {
        VmModel {
            key: crate::key::ObjectKey::namespaced("ns", "db"),
            demand: Res::ZERO,
            pinned_cpus: vcpus + 1,
            vcpus,
            reserved_cpu: 1,
            pinned: None,
            placed: None,
            spread_group: None,
            host_selector: Default::default(),
            passthrough: true,
            hugepages: Some((HugepageSize::OneGibibyte, pages)),
            for_groups: Res::ZERO,
            joins: true,
            moves: crate::planner::model::Moves::Restart,
            migration_blocker: None,
        }
    }

    fn cpus(list: &str) -> CpuSet {
        CpuSet::parse(list).unwrap()
    }

    #[test]
    fn a_guest_within_its_cells_pools_is_as_planned() {
        let found = check(&report([16, 16]), &cpus("10-15,16-19"), &vm(9, 12), &host(TopologyManagerPolicy::None));
        // vCPUs on 10-15 and 16-18, the emulator thread on 19: 6 pages on each cell.
        assert_eq!((found.reason, found.cells.as_slice()), (Reason::WithinPools, &[0, 1][..]));
        assert_eq!(
            found.message,
            "its vCPUs are on NUMA cells 0, 1 and its 12 1Gi pages within their pools, as planned"
        );
    }

    #[test]
    fn a_host_that_boots_other_pools_than_the_plan_counts_is_named() {
        let found = check(&report([16, 8]), &cpus("16-20"), &vm(4, 4), &host(TopologyManagerPolicy::None));
        assert_eq!(found.reason, Reason::PoolsDiffer);
        assert!(found.message.starts_with("NUMA cell 1 holds 8 1Gi pages, the plan counts 16"), "{}", found.message);
        let found = check(&report([16, 16]), &cpus("16-20"), &vm(4, 20), &host(TopologyManagerPolicy::None));
        assert_eq!(found.reason, Reason::OutsidePools);
        assert!(found.message.ends_with("20 1Gi pages on cell 1, which holds 16"), "{}", found.message);
    }

    /// A launcher that fits one cell spans two: not what `restricted` does.
    #[test]
    fn a_landing_the_named_topology_manager_would_not_make_is_named() {
        let found = check(&report([16, 16]), &cpus("14-19"), &vm(5, 4), &host(TopologyManagerPolicy::Restricted));
        assert_eq!(found.reason, Reason::PolicyDiffers);
        assert!(found.message.contains("on NUMA cells 0, 1, but a kubelet with topologyManagerPolicy restricted"));
        let none = check(&report([16, 16]), &cpus("14-19"), &vm(5, 4), &host(TopologyManagerPolicy::None));
        assert_eq!(none.reason, Reason::WithinPools);
    }
}
