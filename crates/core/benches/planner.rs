//! Planner benchmark, two tables in one run, single-threaded (one core's figures):
//! 1. Generated layouts of 100 / 1,000 / 10,000 (/ 100,000) VMs on 10 / 100 / 1,000 hosts with
//!    spread groups, planned by Catalyst (best-fit decreasing, then the exact search where it
//!    leaves a VM out) and by a naive first-fit baseline: the median time of several runs, and
//!    the fewest hosts each needs to place the same VMs, against the cores' lower bound.
//! 2. Tight layouts (95 to 100% of the cores) where best-fit decreasing alone often fails:
//!    how many the heuristic alone, the heuristic with the search, and first fit place.
//!
//! Run: `cargo bench --bench planner` (add `-- --quick` for one run per size).

use catalyst_api::host::{MemoryManagerPolicy, TopologyManagerPolicy};
use catalyst_api::vm::HugepageSize;
use catalyst_core::key::ObjectKey;
use catalyst_core::planner::model::{HostCells, Moves};
use catalyst_core::planner::{HostModel, PlanInput, Res, SearchBudget, Verdict, VmModel, plan, plan_within};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const GI: u64 = 1 << 30;

/// xorshift64*: a fixed seed gives the same layout on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Hosts shaped like the seed's (256 cores, 2 TiB, 8 cores and 64Gi reserved, two NUMA
/// cells, racks of four) and VMs of 2 to 48 cores (powers of two and 48, so a few large VMs
/// among many small ones, as in the seed) at 4 or 8 GiB per core, about 78% of the cores in
/// all; one VM in ten is a member of a three-way spread group, one in ten is NUMA-aware.
fn layout(vms: usize, hosts: usize, seed: u64) -> PlanInput {
    let mut rng = Rng(seed);
    let hosts = (0..hosts)
        .map(|i| HostModel {
            name: format!("host-{i:05}"),
            node_name: format!("node-{i:05}"),
            failure_domain: format!("rack-{:04}", i / 4),
            schedulable: true,
            labels: BTreeMap::new(),
            // 512Gi of the 1,984Gi in 1Gi hugepages, 256 pages on each cell.
            threads_per_core: 1,
            allocatable: Res::cores(248, 1472 * GI) + Res::hugepages(HugepageSize::OneGibibyte, 512 * GI),
            // The kubelet reserves its 8 CPUs on cell 0.
            numa: Some(HostCells {
                threads: 1,
                cores: vec![128, 128],
                reserved: vec![8, 0],
                pools: vec![[256, 0], [256, 0]],
                memory: vec![736 * GI, 736 * GI],
                policy: TopologyManagerPolicy::None,
                memory_manager: MemoryManagerPolicy::None,
            }),
        })
        .collect();
    let vms = (0..vms)
        .map(|i| {
            let cores = rng.pick(&[2u64, 4, 8, 16, 32, 48]);
            let in_group = i % 10 == 0;
            // One VM in ten has NUMA passthrough, its guest memory in 1Gi hugepages, at most
            // 4Gi per core so that it fits the pools of the cells its cores take.
            let passthrough = i % 10 == 5;
            let per_core = rng.pick(&[4u64, 8]);
            let memory = cores * if passthrough { 4 } else { per_core } * GI;
            let overhead = (328 << 20) + cores * (8 << 20) + memory / 512;
            let guest =
                if passthrough { Res::hugepages(HugepageSize::OneGibibyte, memory) } else { Res::cores(0, memory) };
            VmModel {
                key: ObjectKey::namespaced("ns", format!("vm-{i:06}")),
                demand: Res::millicores((cores + 1) * 1000 + 15, overhead + 60_000_000) + guest,
                pinned_cpus: cores + 1,
                vcpus: cores,
                reserved_cpu: 1,
                pinned: None,
                placed: None,
                spread_group: in_group.then(|| ObjectKey::namespaced("ns", format!("group-{}", i / 30))),
                host_selector: BTreeMap::new(),
                passthrough,
                hugepages: passthrough.then_some((HugepageSize::OneGibibyte, memory / GI)),
                joins: true,
                for_groups: Res::cores(cores - 1, memory - 4 * GI),
                moves: Moves::LiveMigrate,
                migration_blocker: None,
            }
        })
        .collect();
    PlanInput { hosts, vms, groups: Vec::new() }
}

/// The baseline a spreadsheet or a first script does: VMs in the order given, each on the
/// first host with room that its spread group does not already use. Returns hosts used and
/// VMs left over.
fn first_fit(input: &PlanInput) -> (usize, usize) {
    let mut free: Vec<Res> = input.hosts.iter().map(|h| h.allocatable).collect();
    let mut spread: BTreeMap<&ObjectKey, Vec<&str>> = BTreeMap::new();
    let mut unplaced = 0;
    for vm in &input.vms {
        let chosen = input.hosts.iter().enumerate().position(|(h, host)| {
            free[h].covers(&vm.demand)
                && vm
                    .spread_group
                    .as_ref()
                    .is_none_or(|g| !spread.get(g).is_some_and(|d| d.contains(&host.failure_domain.as_str())))
        });
        match chosen {
            Some(h) => {
                free[h] = free[h] - vm.demand;
                if let Some(group) = &vm.spread_group {
                    spread.entry(group).or_default().push(input.hosts[h].failure_domain.as_str());
                }
            }
            None => unplaced += 1,
        }
    }
    let used = free.iter().zip(&input.hosts).filter(|(f, h)| **f != h.allocatable).count();
    (used, unplaced)
}

/// A duration with a unit that keeps three significant figures readable.
fn shown(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut result = None;
    let times = (0..runs)
        .map(|_| {
            let start = Instant::now();
            result = Some(std::hint::black_box(f()));
            start.elapsed()
        })
        .collect();
    (median(times), result.expect("at least one run"))
}

/// The fewest hosts of the pool (taken in order) with which `unplaced` reaches zero, counting
/// up from what the cores alone need.
fn fewest_hosts(input: &PlanInput, unplaced: impl Fn(&PlanInput) -> usize) -> usize {
    let cores: u64 = input.vms.iter().map(|vm| vm.demand.millicores).sum();
    let per_host = input.hosts[0].allocatable.millicores;
    let mut count = cores.div_ceil(per_host) as usize;
    loop {
        let trial = PlanInput { hosts: input.hosts[..count].to_vec(), ..input.clone() };
        if unplaced(&trial) == 0 || count == input.hosts.len() {
            return count;
        }
        count += 1;
    }
}

/// The heuristic alone: no search.
fn heuristic(input: &PlanInput) -> catalyst_core::planner::Plan {
    plan_within(input, SearchBudget { nodes: 0, time: Duration::ZERO })
}

/// The cores' lower bound on hosts: what the VMs need over what one host offers.
fn lower_bound(input: &PlanInput) -> usize {
    let cores: u64 = input.vms.iter().map(|vm| vm.demand.millicores).sum();
    cores.div_ceil(input.hosts[0].allocatable.millicores) as usize
}

/// Small and mid-sized layouts packed to 95-100% of their cores with VMs of 1 to 24 cores,
/// some in spread groups: where the heuristic's greed shows.
fn tight_layout(vms: usize, hosts: usize, rng: &mut Rng) -> PlanInput {
    let hosts: Vec<HostModel> = (0..hosts)
        .map(|i| HostModel {
            name: format!("host-{i:03}"),
            node_name: format!("node-{i:03}"),
            failure_domain: format!("host-{i:03}"),
            schedulable: true,
            labels: BTreeMap::new(),
            threads_per_core: 1,
            allocatable: Res::cores(64, 512 * GI),
            numa: None,
        })
        .collect();
    let total = 64 * hosts.len() as u64;
    let target = total * (95 + rng.next() % 6) / 100;
    let mut left = target;
    let mut list = Vec::new();
    for i in 0..vms {
        let remaining = (vms - i) as u64;
        // Sizes that add up to the target: a random share of what is left, at least 1 core.
        let cores = if remaining == 1 {
            left
        } else {
            (1 + rng.next() % (2 * left / remaining).max(1)).min(left - (remaining - 1))
        };
        left -= cores;
        list.push(VmModel {
            key: ObjectKey::namespaced("ns", format!("vm-{i:04}")),
            demand: Res::cores(cores, cores * 4 * GI),
            pinned_cpus: cores,
            vcpus: cores,
            reserved_cpu: 1,
            pinned: None,
            placed: None,
            spread_group: (i % 7 == 0).then(|| ObjectKey::namespaced("ns", format!("group-{}", i / 21))),
            host_selector: BTreeMap::new(),
            passthrough: false,
            hugepages: None,
            joins: true,
            for_groups: Res::cores(cores, cores * 4 * GI),
            moves: Moves::LiveMigrate,
            migration_blocker: None,
        });
    }
    PlanInput { hosts, vms: list, groups: Vec::new() }
}

fn tight_table(quick: bool) {
    println!(
        "\n| tight layouts | hosts | VMs | heuristic alone places all | time | with the search: places all | proven misfit | over budget | time | first fit places all | time |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let shapes: &[(usize, usize, usize)] = if quick {
        &[(200, 3, 10), (20, 20, 120)]
    } else {
        &[(1000, 3, 10), (200, 8, 40), (50, 20, 120), (10, 100, 600)]
    };
    for &(count, hosts, vms) in shapes {
        let mut rng = Rng(0x7161_u64 + hosts as u64);
        let layouts: Vec<PlanInput> = (0..count).map(|_| tight_layout(vms, hosts, &mut rng)).collect();
        let started = Instant::now();
        let alone = layouts.iter().filter(|l| heuristic(l).fits).count();
        let alone_time = started.elapsed();
        let started = Instant::now();
        let verdicts: Vec<Verdict> = layouts.iter().map(|l| plan(l).verdict).collect();
        let search_time = started.elapsed();
        let fits = verdicts.iter().filter(|v| **v == Verdict::Fits).count();
        let proven = verdicts.iter().filter(|v| matches!(v, Verdict::DoesNotFit { .. })).count();
        let over = verdicts.iter().filter(|v| matches!(v, Verdict::NotFoundWithinBudget { .. })).count();
        let started = Instant::now();
        let first = layouts.iter().filter(|l| first_fit(l).1 == 0).count();
        let first_time = started.elapsed();
        let per = |d: Duration| shown(d / count as u32);
        println!(
            "| {count} | {hosts} | {vms} | {alone} | {} | {fits} | {proven} | {over} | {} | {first} | {} |",
            per(alone_time),
            per(search_time),
            per(first_time)
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "| VMs | hosts | plan | per VM | unplaced | fewest hosts: heuristic | with search | cores' lower bound | first fit | unplaced | fewest hosts |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut previous: Option<(usize, Duration)> = None;
    let sizes: &[(usize, usize)] = if quick {
        &[(100, 10), (1_000, 100), (10_000, 1_000)]
    } else {
        &[(100, 10), (1_000, 100), (10_000, 1_000), (100_000, 10_000)]
    };
    for &(vms, hosts) in sizes {
        let input = layout(vms, hosts, 0x00C0_FFEE);
        let runs = if quick { 1 } else { (200_000 / vms).clamp(5, 101) };
        let (bfd_time, result) = time(runs, || plan(&input));
        let bfd_unplaced = result.unplaced().count();
        let (ff_time, (_, ff_unplaced)) = time(runs, || first_fit(&input));
        // Fewest hosts: from a pool twice as large, so both can always get there.
        let pool = layout(vms, hosts * 2, 0x00C0_FFEE);
        let heuristic_hosts = fewest_hosts(&pool, |trial| heuristic(trial).unplaced().count());
        let search_hosts = fewest_hosts(&pool, |trial| plan(trial).unplaced().count());
        let ff_hosts = fewest_hosts(&pool, |trial| first_fit(trial).1);
        println!(
            "| {vms} | {hosts} | {} | {:.2} µs | {bfd_unplaced} | {heuristic_hosts} | {search_hosts} | {} | {} | {ff_unplaced} | {ff_hosts} |",
            shown(bfd_time),
            bfd_time.as_secs_f64() * 1e6 / vms as f64,
            lower_bound(&pool),
            shown(ff_time),
        );
        if let Some((n, t)) = previous {
            let ratio = bfd_time.as_secs_f64() / t.as_secs_f64();
            let n_log_n = (vms as f64 * (vms as f64).ln()) / (n as f64 * (n as f64).ln());
            eprintln!(
                "  {n} -> {vms} VMs: time x{ratio:.1} (n log n predicts x{n_log_n:.1}, n^2 x{:.0})",
                (vms / n).pow(2)
            );
        }
        previous = Some((vms, bfd_time));
    }
    tight_table(quick);
}
