//! Where a host's kubelet and KubeVirt put a VM: a simulation of the host kubelet's static CPU
//! manager, topology manager and memory manager admitting a launcher pod, and of KubeVirt
//! binding the VM's vCPUs and guest memory within the CPUs the kubelet gave it. The planner runs
//! it in every order a host's launchers can arrive in ([`super::numa`]).
//!
//! Each step follows the source it names (kubernetes v1.32, `pkg/kubelet/cm/`; kubevirt v1.9.0):
//! - **CPUs**: `cpumanager/cpu_assignment.go`, `takeByTopologyNUMAPacked`: whole free NUMA nodes
//!   the request covers, then whole free cores, then single CPUs, each step ordering NUMA nodes
//!   and the cores within them by their free CPUs (fewest first, best fit) and then by id. One
//!   socket per NUMA node (`numaFirst`); cores numbered cell by cell.
//! - **Reserved CPUs**: `policy_static.go`, `NewStaticPolicy`: for a count, the same packing on
//!   an idle machine, so the lowest cells' first cores ([`HostCells::kubelet_reserved`]).
//! - **Hints**: `policy_static.go`, `generateCPUTopologyHints`: every set of NUMA nodes whose free
//!   CPUs cover the request, preferred when it is as small as the fewest nodes whose *capacity*
//!   covers it; the memory manager's (`memorymanager/policy_static.go`, `calculateHints`) alike
//!   over allocatable and free memory and hugepages, with its rules for nodes shared by earlier
//!   multi-node allocations.
//! - **Admission**: `topologymanager/policy.go`, `mergePermutation` and the policies: the best
//!   merged hint (preferred first; then the narrowest, the lowest mask), admitted by `restricted`
//!   and `single-numa-node` only when preferred (`TopologyAffinityError`); `best-effort` and
//!   `none` admit always.
//! - **Allocation**: `allocateCPUs`: the hint's CPUs first (packed within them), then the rest.
//!   The memory manager fills the hint's nodes in id order (`updateMachineState`).
//! - **KubeVirt**: `pkg/virt-launcher/virtwrap/converter/vcpu/vcpu.go`: vCPUs take whole guest
//!   cores from the pod's CPUs cell by cell (`fitCPUBound`, then `fitCellBound`; a passthrough
//!   VM's guest core never crosses cells), the emulator thread(s) the first thread left
//!   (`FormatEmulatorThreadPin`, `fitThread`); a passthrough VM's guest memory is bound strictly
//!   to the cells its vCPUs took (`involvedCells`: the emulator thread's cell does not count), in
//!   equal shares of whole hugepages, the lower cells one page more (`numaMapping`).
//!
//! What the model leaves out: the launcher's sidecars (fractions of a CPU and tens of megabytes,
//! no exclusive CPUs), the alpha CPU manager options (`distribute-cpus-across-numa`,
//! `align-by-socket`, `prefer-align-cpus-by-uncorecache`), machines with more NUMA nodes than
//! sockets, and `prefer-closest-numa-nodes` (distances). A hugepage VM without passthrough takes
//! its pages where QEMU first touches them, from its emulator thread's cell and then the others
//! in order, unless the memory manager binds them.

use crate::quantity::parse_bytes;
use catalyst_api::CatalystHostSpec;
use catalyst_api::host::{MemoryManagerPolicy, TopologyManagerPolicy};
use catalyst_api::vm::HugepageSize;

/// A set of cells, bit `c` for cell `c` (at most 64 cells).
pub type Mask = u64;

fn cells_of(mask: Mask) -> impl Iterator<Item = usize> {
    (0..64).filter(move |c| mask & (1 << c) != 0)
}

/// The index of a page size in the per-cell pools.
pub(super) fn size_index(size: HugepageSize) -> usize {
    match size {
        HugepageSize::OneGibibyte => 0,
        HugepageSize::TwoMebibytes => 1,
    }
}

/// A host's NUMA cells and its kubelet's rules, as the simulation reads them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostCells {
    /// Hardware threads per physical core.
    pub threads: u32,
    /// Physical cores per cell.
    pub cores: Vec<u32>,
    /// Threads the kubelet reserves per cell, on the cell's first cores.
    pub reserved: Vec<u32>,
    /// Hugepages per cell: [1Gi, 2Mi].
    pub pools: Vec<[u64; 2]>,
    /// Ordinary memory per cell the memory manager may give (its allocatable).
    pub memory: Vec<u64>,
    pub policy: TopologyManagerPolicy,
    pub memory_manager: MemoryManagerPolicy,
}

impl HostCells {
    /// A validated host's cells. Cell `c` holds `numa[c].cpu / threadsPerCore` cores; the kubelet
    /// reserves `reservedCpu` of each cell where the host says, else its own choice for
    /// `reserved.cpu`; the pools are the cells' own, else the kernel's split of the host's; the
    /// memory manager gives each cell's memory less its pools, and less the host's reserved
    /// memory on cell 0 (where a KubeletConfiguration's `reservedMemory` usually puts it).
    pub fn from_spec(spec: &CatalystHostSpec) -> Self {
        let threads = u32::try_from(spec.threads()).unwrap_or(1);
        let cell_threads: Vec<u32> = spec.numa.iter().map(|cell| cell.cpu - cell.cpu % threads).collect();
        let reserved = if spec.numa.iter().all(|cell| cell.reserved_cpu.is_some()) {
            spec.numa.iter().map(|cell| cell.reserved_cpu.unwrap_or(0)).collect()
        } else {
            Self::kubelet_reserved(&cell_threads, spec.reserved.cpu)
        };
        let pools: Vec<[u64; 2]> = if spec.numa.iter().all(|cell| cell.hugepages.is_some()) {
            spec.numa
                .iter()
                .map(|cell| cell.hugepages.as_ref().map_or([0, 0], |p| [p.pages_1gi.into(), p.pages_2mi.into()]))
                .collect()
        } else {
            let cells = spec.numa.len();
            let ones = Self::kernel_split(spec.hugepages.pages_1gi.into(), cells);
            let twos = Self::kernel_split(spec.hugepages.pages_2mi.into(), cells);
            ones.into_iter().zip(twos).map(|(one, two)| [one, two]).collect()
        };
        let reserved_memory = parse_bytes(&spec.reserved.memory.0).unwrap_or(0);
        let memory = spec
            .numa
            .iter()
            .zip(&pools)
            .enumerate()
            .map(|(c, (cell, pool))| {
                let pages = (pool[0] << 30) + (pool[1] << 21);
                let kept = if c == 0 { reserved_memory } else { 0 };
                parse_bytes(&cell.memory.0).unwrap_or(0).saturating_sub(pages + kept)
            })
            .collect();
        Self {
            threads,
            cores: cell_threads.iter().map(|t| t / threads).collect(),
            reserved,
            pools,
            memory,
            policy: spec.kubelet.topology_manager_policy,
            memory_manager: spec.kubelet.memory_manager_policy,
        }
    }

    /// The kubelet's reserved CPUs for a count (`NewStaticPolicy`, `takeByTopology` on an idle
    /// machine): whole cells from the lowest, then the next cell's first cores; per cell.
    pub fn kubelet_reserved(cell_threads: &[u32], count: u32) -> Vec<u32> {
        let mut left = count;
        cell_threads
            .iter()
            .map(|&size| {
                let here = left.min(size);
                left -= here;
                here
            })
            .collect()
    }

    /// The kernel's split of `pages` boot-time hugepages over `cells` (`hugetlb_hstate_alloc_pages`,
    /// round robin from the first node with memory): the first `pages % cells` one page more.
    pub fn kernel_split(pages: u64, cells: usize) -> Vec<u64> {
        let cells = cells.max(1) as u64;
        (0..cells).map(|c| pages / cells + u64::from(c < pages % cells)).collect()
    }

    /// The guest memory a passthrough launcher can have here: the pools of its page size on the
    /// fewest cells its vCPUs fit, the smallest pools counted.
    pub fn pools_for(&self, launcher: &Launcher) -> u64 {
        let Some((size, _)) = launcher.hugepages else { return 0 };
        let smallest = self.pools.iter().map(|p| p[size_index(size)]).min().unwrap_or(0);
        self.fewest_cells(launcher.vcpus) as u64 * smallest * size.bytes()
    }

    /// The fewest cells whose CPUs the kubelet may give (the reserved ones left out) add up to
    /// `cpus`; at least one.
    pub(super) fn fewest_cells(&self, cpus: u32) -> usize {
        let mut usable: Vec<u32> = (0..self.cores.len()).map(|c| self.usable(c)).collect();
        usable.sort_unstable_by(|a, b| b.cmp(a));
        let mut held = 0;
        let mut count = 0;
        for cell in usable {
            if held >= cpus {
                break;
            }
            held += cell;
            count += 1;
        }
        count.max(1)
    }

    pub(super) fn cell_threads(&self, c: usize) -> u32 {
        self.cores[c] * self.threads
    }

    /// The CPUs of cell `c` the kubelet may give pods.
    pub(super) fn usable(&self, c: usize) -> u32 {
        self.cell_threads(c).saturating_sub(self.reserved[c])
    }

    fn all(&self) -> Mask {
        (1u64 << self.cores.len()) - 1
    }

    /// The state of an idle host: every thread free but the reserved ones.
    pub fn idle(&self) -> State {
        let free = (0..self.cores.len())
            .map(|c| {
                let mut left = self.reserved[c];
                (0..self.cores[c])
                    .map(|_| {
                        let taken = left.min(self.threads);
                        left -= taken;
                        (self.threads - taken) as u8
                    })
                    .collect()
            })
            .collect();
        State {
            free,
            pages: self.pools.clone(),
            memory: self.memory.clone(),
            assignments: vec![0; self.cores.len()],
            groups: vec![0; self.cores.len()],
        }
    }
}

/// What a launcher asks of its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Launcher {
    /// CPUs its compute container pins: vCPUs and the emulator thread's.
    pub cpus: u32,
    pub vcpus: u32,
    /// Threads per core the guest sees (its vCPUs are pinned a guest core at a time).
    pub guest_threads: u32,
    pub passthrough: bool,
    /// Its guest memory in hugepages, where it has them: size and count.
    pub hugepages: Option<(HugepageSize, u64)>,
    /// Ordinary memory it asks (its overhead, and its guest memory when it has no hugepages).
    pub memory: u64,
}

/// A host's free CPUs, hugepages and memory at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State {
    /// Free threads of each core, per cell.
    free: Vec<Vec<u8>>,
    /// Free hugepages per cell: [1Gi, 2Mi].
    pages: Vec<[u64; 2]>,
    /// Free ordinary memory per cell, as the memory manager counts it.
    memory: Vec<u64>,
    /// The memory manager's allocations on each cell, and the cells each was made over.
    assignments: Vec<u32>,
    groups: Vec<Mask>,
}

impl State {
    /// Orders each cell's cores by their free threads, most first. Which core of a cell holds
    /// which free threads changes nothing the simulation decides (the kubelet takes cores by
    /// their free threads, KubeVirt counts threads per cell), so states that differ only in
    /// that are one state, and the walk over orders meets them once.
    fn forget_core_ids(&mut self) {
        for cell in &mut self.free {
            cell.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    fn free_in(&self, c: usize) -> u32 {
        self.free[c].iter().map(|&t| u32::from(t)).sum()
    }

    fn free_in_mask(&self, mask: Mask) -> u32 {
        cells_of(mask).map(|c| self.free_in(c)).sum()
    }
}

/// Where a launcher landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// CPUs it holds per cell.
    pub cpus: Vec<u32>,
    /// The cells its vCPUs took: a passthrough VM's guest cells.
    pub vcpu_cells: Mask,
    /// Hugepages it took per cell.
    pub pages: Vec<u64>,
}

/// Why a launcher does not run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The topology manager refuses it (`TopologyAffinityError`): no hint is preferred.
    TopologyAffinity,
    /// The memory manager cannot allocate it (`UnexpectedAdmissionError`).
    MemoryManager,
    /// Not enough free CPUs (the scheduler would not have sent it; the totals say so first).
    Cpus,
    /// KubeVirt cannot pin its vCPUs a guest core at a time without crossing cells.
    GuestCores,
    /// Its guest memory does not fit the pools of the cells it is bound to: `need` pages of
    /// `size` on `cell`, which has `free`.
    Pages { cell: usize, size: HugepageSize, need: u64, free: u64 },
}

/// A topology hint: a set of cells and whether it is preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hint {
    mask: Mask,
    preferred: bool,
}

/// Every mask of `n` cells, by size then lexicographically (`bitmask.IterateBitMasks`).
fn masks(n: usize) -> Vec<Mask> {
    let mut all: Vec<Mask> = (1..(1u64 << n)).collect();
    all.sort_by_key(|m| (m.count_ones(), cells_of(*m).collect::<Vec<_>>()));
    all
}

/// The CPU manager's hints for `need` CPUs (`generateCPUTopologyHints`).
fn cpu_hints(host: &HostCells, state: &State, need: u32) -> Vec<Hint> {
    let all = masks(host.cores.len());
    let capacity = |m: Mask| cells_of(m).map(|c| host.cell_threads(c)).sum::<u32>();
    let min_size = all.iter().filter(|&&m| capacity(m) >= need).map(|m| m.count_ones()).min().unwrap_or(64);
    all.into_iter()
        .filter(|&m| state.free_in_mask(m) >= need)
        .map(|mask| Hint { mask, preferred: mask.count_ones() == min_size })
        .collect()
}

/// The memory manager's hints (`calculateHints`), one list for every resource it is asked.
fn memory_hints(host: &HostCells, state: &State, launcher: &Launcher) -> Vec<Hint> {
    let pages = launcher.hugepages.map(|(size, count)| (size_index(size), count));
    let allocatable = |m: Mask| -> (u64, u64) {
        let pages = pages.map_or(0, |(i, _)| cells_of(m).map(|c| host.pools[c][i]).sum());
        (cells_of(m).map(|c| host.memory[c]).sum(), pages)
    };
    let free = |m: Mask| -> (u64, u64) {
        let pages = pages.map_or(0, |(i, _)| cells_of(m).map(|c| state.pages[c][i]).sum());
        (cells_of(m).map(|c| state.memory[c]).sum(), pages)
    };
    let wanted = pages.map_or(0, |(_, count)| count);
    let mut min_size = 64;
    let mut hints = Vec::new();
    for mask in masks(host.cores.len()) {
        let (memory, pool) = allocatable(mask);
        if memory < launcher.memory || pool < wanted {
            continue;
        }
        min_size = min_size.min(mask.count_ones());
        let used_apart = cells_of(mask).any(|c| state.assignments[c] > 0 && state.groups[c] != mask);
        let single_in_group = mask.count_ones() == 1 && cells_of(mask).any(|c| state.groups[c].count_ones() > 1);
        if used_apart && (mask.count_ones() > 1 || single_in_group) {
            continue;
        }
        let (memory, pool) = free(mask);
        if memory < launcher.memory || pool < wanted {
            continue;
        }
        hints.push(Hint { mask, preferred: false });
    }
    for hint in &mut hints {
        hint.preferred = hint.mask.count_ones() == min_size;
    }
    hints
}

/// Whether `a` is a better merged hint than `b` (`policy.go`, `compare`): preferred first; of
/// two preferred the narrowest (fewest cells, then the lowest mask); of two not preferred the
/// one closest to `widest` cells, the narrowest among equals.
fn better(a: Hint, b: Hint, widest: u32) -> bool {
    if a.preferred != b.preferred {
        return a.preferred;
    }
    let narrower = |x: Mask, y: Mask| (x.count_ones(), x) < (y.count_ones(), y);
    if a.preferred {
        return narrower(a.mask, b.mask);
    }
    let rank = |m: Mask| {
        let n = m.count_ones();
        match n.cmp(&widest) {
            std::cmp::Ordering::Equal => (0, 0),
            std::cmp::Ordering::Less => (1, u32::MAX - n),
            std::cmp::Ordering::Greater => (2, 0),
        }
    };
    (rank(a.mask), a.mask.count_ones(), a.mask) < (rank(b.mask), b.mask.count_ones(), b.mask)
}

/// The topology manager's merged hint over the providers' lists (`mergePermutation` over their
/// cross product), or none when no combination leaves a cell.
fn merge(lists: &[Vec<Hint>], all: Mask, policy: TopologyManagerPolicy) -> Hint {
    let lists: Vec<Vec<Hint>> = match policy {
        TopologyManagerPolicy::SingleNumaNode => lists
            .iter()
            .map(|list| list.iter().copied().filter(|h| h.preferred && h.mask.count_ones() == 1).collect())
            .collect(),
        _ => lists.to_vec(),
    };
    let widest = lists.iter().filter_map(|l| l.iter().map(|h| h.mask.count_ones()).min()).max().unwrap_or(0);
    let mut best: Option<Hint> = None;
    let mut combination = vec![0usize; lists.len()];
    if lists.iter().all(|l| !l.is_empty()) {
        loop {
            let hints: Vec<Hint> = combination.iter().zip(&lists).map(|(&i, l)| l[i]).collect();
            let mask = hints.iter().fold(all, |m, h| m & h.mask);
            let preferred = hints.iter().all(|h| h.preferred && h.mask == hints[0].mask);
            let candidate = Hint { mask, preferred };
            if mask != 0 && best.is_none_or(|b| better(candidate, b, widest)) {
                best = Some(candidate);
            }
            // The next combination, as an odometer.
            let mut i = 0;
            while i < lists.len() {
                combination[i] += 1;
                if combination[i] < lists[i].len() {
                    break;
                }
                combination[i] = 0;
                i += 1;
            }
            if i == lists.len() {
                break;
            }
        }
    }
    best.unwrap_or(Hint { mask: all, preferred: false })
}

/// `takeByTopologyNUMAPacked` of `need` CPUs among the free CPUs of `allowed` cells, taken
/// from `state` and returned per cell and core.
fn take(host: &HostCells, state: &mut State, allowed: Mask, mut need: u32) -> Vec<(usize, usize, u8)> {
    let mut taken = Vec::new();
    let threads = host.threads as u8;
    // Cells with a free CPU, fewest free first, then by id.
    let order = |state: &State| {
        let mut cells: Vec<usize> =
            cells_of(allowed).filter(|&c| c < host.cores.len() && state.free_in(c) > 0).collect();
        cells.sort_by_key(|&c| (state.free_in(c), c));
        cells
    };
    // 1. Whole free cells the request covers.
    for c in order(state) {
        let whole = host.cell_threads(c);
        if state.free_in(c) == whole && need >= whole {
            for (core, free) in state.free[c].iter_mut().enumerate() {
                taken.push((c, core, *free));
                *free = 0;
            }
            need -= whole;
        }
    }
    if need == 0 {
        return taken;
    }
    // 2. Whole free cores, in cell order, then core order (all free cores hold the same).
    let cores: Vec<(usize, usize)> = order(state)
        .into_iter()
        .flat_map(|c| (0..state.free[c].len()).filter(move |_| true).map(move |core| (c, core)))
        .filter(|&(c, core)| state.free[c][core] == threads)
        .collect();
    for (c, core) in cores {
        if need >= u32::from(threads) {
            state.free[c][core] = 0;
            taken.push((c, core, threads));
            need -= u32::from(threads);
        }
    }
    if need == 0 {
        return taken;
    }
    // 3. Single CPUs: cells as before, cores with the fewest free first, then by id.
    for c in order(state) {
        let mut cores: Vec<usize> = (0..state.free[c].len()).filter(|&core| state.free[c][core] > 0).collect();
        cores.sort_by_key(|&core| (state.free[c][core], core));
        for core in cores {
            while state.free[c][core] > 0 && need > 0 {
                state.free[c][core] -= 1;
                taken.push((c, core, 1));
                need -= 1;
            }
            if need == 0 {
                return taken;
            }
        }
    }
    taken
}

/// KubeVirt's pinning within the pod's CPUs (`cpuPool`: `FitCores` then `FitThread`): the cells
/// the vCPUs take, and the cell of the emulator thread's own CPU when it has one (without
/// `isolateEmulatorThread` it shares the vCPUs'); `None` when a guest core cannot be formed.
fn pin(host: &HostCells, pod: &[(usize, usize, u8)], launcher: &Launcher) -> Option<(Mask, Option<usize>)> {
    // The pod's threads, per cell and core, in the host's order.
    let mut cells: Vec<Vec<u8>> = vec![vec![0; 0]; host.cores.len()];
    for &(c, core, count) in pod {
        if cells[c].len() <= core {
            cells[c].resize(core + 1, 0);
        }
        cells[c][core] += count;
    }
    let per = launcher.guest_threads.max(1) as u8;
    let mut guest_cores = launcher.vcpus / u32::from(per);
    let mut vcpu_cells: Mask = 0;
    // Whole guest cores from cores holding at least `per` of the pod's threads, cell by cell;
    // a remainder smaller than a guest core goes to the cell's fragmented threads.
    let mut fragments = vec![0u32; cells.len()];
    for (c, cores) in cells.iter_mut().enumerate() {
        for threads in cores.iter_mut() {
            while *threads >= per && guest_cores > 0 {
                *threads -= per;
                guest_cores -= 1;
                vcpu_cells |= 1 << c;
            }
            if *threads < per {
                fragments[c] += u32::from(*threads);
                *threads = 0;
            }
        }
    }
    for (c, fragment) in fragments.iter_mut().enumerate() {
        while *fragment >= u32::from(per) && guest_cores > 0 {
            *fragment -= u32::from(per);
            guest_cores -= 1;
            vcpu_cells |= 1 << c;
        }
    }
    // Without passthrough a guest core may cross cells (`fitUnbound`).
    let mut threads_left = if launcher.passthrough { 0 } else { guest_cores * u32::from(per) };
    for (c, fragment) in fragments.iter_mut().enumerate() {
        let here = threads_left.min(*fragment);
        if here > 0 {
            *fragment -= here;
            threads_left -= here;
            vcpu_cells |= 1 << c;
        }
    }
    if guest_cores > 0 && (launcher.passthrough || threads_left > 0) {
        return None;
    }
    // The emulator thread: the first cell with a thread left.
    let emulator = (0..cells.len()).find(|&c| fragments[c] > 0 || cells[c].iter().any(|&t| t > 0));
    Some((vcpu_cells, emulator))
}

/// Admits `launcher` on a host in `state`: the state after it, and where it landed.
pub fn admit(host: &HostCells, state: &State, launcher: &Launcher) -> Result<(State, Landing), Misfit> {
    let mut next = state.clone();
    let all = host.all();
    let static_memory = host.memory_manager == MemoryManagerPolicy::Static;
    // Hints and admission.
    let hint = match host.policy {
        TopologyManagerPolicy::None => None,
        policy => {
            let mut lists = vec![cpu_hints(host, state, launcher.cpus)];
            if static_memory {
                lists.push(memory_hints(host, state, launcher));
            }
            let best = merge(&lists, all, policy);
            if matches!(policy, TopologyManagerPolicy::Restricted | TopologyManagerPolicy::SingleNumaNode)
                && !best.preferred
            {
                return Err(Misfit::TopologyAffinity);
            }
            Some(best.mask)
        }
    };
    // CPUs: the hint's first, then the rest.
    if state.free_in_mask(all) < launcher.cpus {
        return Err(Misfit::Cpus);
    }
    let mut pod = Vec::new();
    if let Some(mask) = hint {
        let aligned = launcher.cpus.min(next.free_in_mask(mask));
        pod = take(host, &mut next, mask, aligned);
    }
    let got: u32 = pod.iter().map(|&(_, _, t)| u32::from(t)).sum();
    pod.extend(take(host, &mut next, all, launcher.cpus - got));
    // Memory: the memory manager's cells (its own best hint without a topology manager,
    // widened when the hint's cells lack the room), filled in id order.
    let pages_wanted = launcher.hugepages.map(|(size, count)| (size_index(size), size, count));
    let mut mems = all;
    if static_memory {
        let own = memory_hints(host, state, launcher);
        let chosen = hint.unwrap_or_else(|| {
            own.iter().copied().min_by_key(|h| (!h.preferred, h.mask.count_ones(), h.mask)).map_or(0, |h| h.mask)
        });
        let fits = |m: Mask| {
            let memory: u64 = cells_of(m).map(|c| next.memory[c]).sum();
            let pages: u64 = pages_wanted.map_or(0, |(i, _, _)| cells_of(m).map(|c| next.pages[c][i]).sum());
            m != 0 && memory >= launcher.memory && pages >= pages_wanted.map_or(0, |(_, _, n)| n)
        };
        mems = if fits(chosen) {
            chosen
        } else {
            own.iter()
                .filter(|h| h.mask & chosen == chosen)
                .min_by_key(|h| (h.mask.count_ones(), h.mask))
                .map(|h| h.mask)
                .filter(|&m| fits(m))
                .ok_or(Misfit::MemoryManager)?
        };
        let mut left = launcher.memory;
        for c in cells_of(mems) {
            let here = left.min(next.memory[c]);
            next.memory[c] -= here;
            left -= here;
            next.assignments[c] += 1;
            next.groups[c] = mems;
        }
    }
    // KubeVirt's pinning, and where the guest memory goes.
    let (vcpu_cells, emulator) = pin(host, &pod, launcher).ok_or(Misfit::GuestCores)?;
    let emulator = emulator.or_else(|| cells_of(vcpu_cells).next()).unwrap_or(0);
    let mut pages = vec![0u64; host.cores.len()];
    if let Some((i, size, count)) = pages_wanted {
        if launcher.passthrough {
            // numaMapping: equal shares over the vCPUs' cells, the lower cells one page more;
            // strict, and within the memory manager's cells where it binds them.
            let involved: Vec<usize> = cells_of(vcpu_cells).collect();
            let n = involved.len() as u64;
            for (k, &c) in involved.iter().enumerate() {
                let share = count / n + u64::from((k as u64) < count % n);
                if mems & (1 << c) == 0 || next.pages[c][i] < share {
                    let free = if mems & (1 << c) == 0 { 0 } else { next.pages[c][i] };
                    return Err(Misfit::Pages { cell: c, size, need: share, free });
                }
                next.pages[c][i] -= share;
                pages[c] = share;
            }
        } else {
            // Where the pages are first touched: the memory manager's cells in order, or the
            // emulator thread's cell and then the others.
            let order: Vec<usize> = if static_memory {
                cells_of(mems).collect()
            } else {
                std::iter::once(emulator).chain((0..host.cores.len()).filter(|&c| c != emulator)).collect()
            };
            let mut left = count;
            for c in order {
                let here = left.min(next.pages[c][i]);
                next.pages[c][i] -= here;
                pages[c] += here;
                left -= here;
            }
            if left > 0 {
                let cell = if static_memory { cells_of(mems).next().unwrap_or(0) } else { emulator };
                return Err(Misfit::Pages { cell, size, need: count, free: count - left });
            }
        }
    }
    let mut cpus = vec![0u32; host.cores.len()];
    for &(c, _, t) in &pod {
        cpus[c] += u32::from(t);
    }
    next.forget_core_ids();
    Ok((next, Landing { cpus, vcpu_cells, pages }))
}

/// Small hosts and launchers for the tests of the simulation and of the walk over orders.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    /// Two cells of `cores` single-thread cores, `pages` 1Gi pages each, nothing reserved.
    pub fn two_cells(cores: u32, pages: u64, policy: TopologyManagerPolicy) -> HostCells {
        HostCells {
            threads: 1,
            cores: vec![cores, cores],
            reserved: vec![0, 0],
            pools: vec![[pages, 0], [pages, 0]],
            memory: vec![1 << 40, 1 << 40],
            policy,
            memory_manager: MemoryManagerPolicy::None,
        }
    }

    /// `vcpus` and an emulator thread, `pages` 1Gi pages of guest memory (none when 0).
    pub fn launcher(vcpus: u32, pages: u64, passthrough: bool) -> Launcher {
        Launcher {
            cpus: vcpus + 1,
            vcpus,
            guest_threads: 1,
            passthrough,
            hugepages: (pages > 0).then_some((HugepageSize::OneGibibyte, pages)),
            memory: 1 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{launcher, two_cells as host};
    use super::*;

    fn passthrough(vcpus: u32, pages: u64) -> Launcher {
        launcher(vcpus, pages, true)
    }

    /// Issue 21's dragonflydb: 48 vCPUs fit one cell of 128, so all 1,024 pages are bound to
    /// that cell, which holds 512: QEMU cannot allocate the guest.
    #[test]
    fn a_vm_that_fits_one_cell_by_cpu_takes_all_its_pages_there() {
        let host = host(128, 512, TopologyManagerPolicy::None);
        let misfit = admit(&host, &host.idle(), &passthrough(48, 1024)).unwrap_err();
        assert_eq!(misfit, Misfit::Pages { cell: 0, size: HugepageSize::OneGibibyte, need: 1024, free: 512 });
        // 200 vCPUs take both cells: 512 pages each.
        let (_, landing) = admit(&host, &host.idle(), &passthrough(200, 1024)).unwrap();
        assert_eq!((landing.vcpu_cells, landing.pages), (0b11, vec![512, 512]));
    }

    /// Packed best fit: the launcher fills the fullest cell first and spills into the next.
    #[test]
    fn without_a_topology_manager_cpus_fill_the_fullest_cell_first() {
        let host = host(16, 64, TopologyManagerPolicy::None);
        let (after, first) = admit(&host, &host.idle(), &passthrough(9, 10)).unwrap();
        assert_eq!(first.cpus, vec![10, 0]);
        // 6 free on cell 0, 16 on cell 1: a 10-CPU launcher takes cell 0's 6 and 4 of cell 1.
        let (_, second) = admit(&host, &after, &passthrough(9, 10)).unwrap();
        assert_eq!(second.cpus, vec![6, 4]);
        assert_eq!(second.vcpu_cells, 0b11, "6 vCPUs on cell 0, 3 and the emulator thread on cell 1");
        assert_eq!(second.pages, vec![5, 5]);
    }

    /// With a topology manager, the lowest cell whose free CPUs fit; restricted refuses a
    /// launcher no single cell can hold though one cell's capacity could.
    #[test]
    fn a_topology_manager_takes_the_lowest_cell_that_fits_or_refuses() {
        let host = host(16, 64, TopologyManagerPolicy::Restricted);
        let (after, first) = admit(&host, &host.idle(), &passthrough(9, 10)).unwrap();
        assert_eq!(first.cpus, vec![10, 0]);
        let (after, second) = admit(&host, &after, &passthrough(9, 10)).unwrap();
        assert_eq!(second.cpus, vec![0, 10], "cell 0 has 6 free: the next cell that fits");
        assert_eq!(admit(&host, &after, &passthrough(9, 10)), Err(Misfit::TopologyAffinity));
    }

    /// The emulator thread's cell is not the guest's (`involvedCells` counts vCPU pins only):
    /// a launcher whose vCPU is on cell 0 and emulator thread on cell 1 binds all its pages to
    /// cell 0. And a launcher that covers a whole free cell takes it first.
    #[test]
    fn the_emulator_threads_cell_holds_none_of_the_guest_memory() {
        let reserving = HostCells { reserved: vec![1, 1], ..host(2, 64, TopologyManagerPolicy::None) };
        let (_, landing) = admit(&reserving, &reserving.idle(), &passthrough(1, 4)).unwrap();
        assert_eq!((landing.cpus, landing.vcpu_cells, landing.pages), (vec![1, 1], 0b01, vec![4, 0]));
        // Without the reserved CPUs, a 1-CPU launcher leaves cell 0 one CPU, and the next
        // launcher covers the whole free cell 1: it takes that instead of the fuller cell.
        let host = host(2, 64, TopologyManagerPolicy::None);
        let one_cpu = Launcher { cpus: 1, vcpus: 1, passthrough: false, hugepages: None, ..passthrough(1, 0) };
        let (after, _) = admit(&host, &host.idle(), &one_cpu).unwrap();
        let (_, landing) = admit(&host, &after, &passthrough(1, 4)).unwrap();
        assert_eq!((landing.cpus, landing.vcpu_cells, landing.pages), (vec![0, 2], 0b10, vec![0, 4]));
    }

    #[test]
    fn reserved_cpus_and_pools_split_as_the_kubelet_and_the_kernel_split_them() {
        assert_eq!(HostCells::kubelet_reserved(&[128, 128], 8), [8, 0]);
        assert_eq!(HostCells::kubelet_reserved(&[4, 4], 6), [4, 2]);
        assert_eq!(HostCells::kernel_split(5, 2), [3, 2]);
        assert_eq!(HostCells::kernel_split(1024, 2), [512, 512]);
    }
}
