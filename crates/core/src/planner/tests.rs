//! Small layouts with answers worked out by hand, and properties over generated ones.

use super::model::HostCells;
use super::whatif::{host_loss, hosts_needed};
use super::*;
use crate::key::ObjectKey;
use catalyst_api::host::{MemoryManagerPolicy, TopologyManagerPolicy};
use catalyst_api::vm::HugepageSize;
use proptest::prelude::*;
use std::collections::BTreeMap;

const GI: u64 = 1 << 30;

pub(super) fn host(name: &str, cpu: u64, memory_gi: u64) -> HostModel {
    HostModel {
        name: name.into(),
        node_name: format!("node-{name}"),
        failure_domain: name.into(),
        schedulable: true,
        labels: BTreeMap::new(),
        allocatable: Res::cores(cpu, memory_gi * GI),
        threads_per_core: 1,
        numa: None,
    }
}

/// The key of `name` in namespace `ns`, where the layouts here put every VM and group.
pub(super) fn key(name: &str) -> ObjectKey {
    ObjectKey::namespaced("ns", name)
}

pub(super) fn vm(name: &str, cpu: u64, memory_gi: u64) -> VmModel {
    VmModel {
        key: key(name),
        demand: Res::cores(cpu, memory_gi * GI),
        pinned_cpus: cpu,
        vcpus: cpu,
        reserved_cpu: 1,
        pinned: None,
        placed: None,
        spread_group: None,
        host_selector: BTreeMap::new(),
        passthrough: false,
        hugepages: None,
        joins: true,
        moves: super::model::Moves::LiveMigrate,
        migration_blocker: None,
        for_groups: Res::cores(cpu, memory_gi * GI),
    }
}

pub(super) fn spread(mut vm: VmModel, group: &str) -> VmModel {
    vm.spread_group = Some(key(group));
    vm
}

fn input(hosts: Vec<HostModel>, vms: Vec<VmModel>) -> PlanInput {
    PlanInput { hosts, vms, groups: Vec::new() }
}

fn host_of(plan: &Plan, vm: &str) -> Option<String> {
    plan.vms.iter().find(|p| p.vm == key(vm)).and_then(|p| p.host.clone())
}

fn resources_of(plan: &Plan) -> Vec<(String, String)> {
    plan.violations.iter().map(|v| (v.object.to_string(), v.resource.clone())).collect()
}

#[test]
fn best_fit_takes_the_tightest_host_and_keeps_room_for_large_vms() {
    let plan =
        plan(&input(vec![host("a", 10, 100), host("b", 20, 100)], vec![vm("y", 8, 1), vm("z", 8, 1), vm("x", 12, 1)]));
    // x (largest) only fits b; y then fits b's 8 left exactly; z goes to a.
    assert_eq!(host_of(&plan, "x").as_deref(), Some("b"));
    assert_eq!(host_of(&plan, "y").as_deref(), Some("b"));
    assert_eq!(host_of(&plan, "z").as_deref(), Some("a"));
    assert!(plan.fits);
    assert_eq!(plan.vms.iter().map(|v| v.vm.name()).collect::<Vec<_>>(), ["x", "y", "z"]);
}

#[test]
fn memory_is_checked_on_every_candidate() {
    let plan = plan(&input(vec![host("a", 10, 4), host("b", 20, 64)], vec![vm("big-memory", 8, 32)]));
    assert_eq!(host_of(&plan, "big-memory").as_deref(), Some("b"));
}

#[test]
fn an_unplaceable_vm_names_the_resource_requested_available_and_shortfall() {
    let plan = plan(&input(vec![host("a", 16, 64)], vec![vm("huge", 24, 100)]));
    assert!(!plan.fits);
    let cpu = &plan.violations[0];
    assert_eq!((&cpu.object, cpu.resource.as_str()), (&super::Subject::vm(&key("huge")), "cpu"));
    assert_eq!(
        (cpu.requested.as_deref(), cpu.available.as_deref(), cpu.shortfall.as_deref()),
        (Some("24"), Some("16"), Some("8"))
    );
    let memory = &plan.violations[1];
    assert_eq!(memory.resource, "memory");
    assert_eq!(
        (memory.requested.as_deref(), memory.available.as_deref(), memory.shortfall.as_deref()),
        (Some("100Gi"), Some("64Gi"), Some("36Gi"))
    );
    assert_eq!(plan.totals.shortfall, Res::cores(8, 36 * GI));
}

#[test]
fn spread_group_members_land_on_distinct_hosts() {
    let vms = vec![spread(vm("k1", 4, 1), "kafka"), spread(vm("k2", 4, 1), "kafka"), spread(vm("k3", 4, 1), "kafka")];
    let plan = plan(&input(vec![host("a", 100, 100), host("b", 100, 100)], vms));
    let hosts: Vec<_> = ["k1", "k2", "k3"].iter().filter_map(|k| host_of(&plan, k)).collect();
    assert_eq!(hosts.len(), 2);
    assert_ne!(hosts[0], hosts[1]);
    assert_eq!(resources_of(&plan), [("CatalystVM ns/k3".to_string(), "spreadGroup".to_string())]);
}

#[test]
fn spread_groups_are_per_namespace_and_respect_failure_domains() {
    let mut a = host("a", 100, 100);
    let mut b = host("b", 100, 100);
    a.failure_domain = "rack-1".into();
    b.failure_domain = "rack-1".into();
    let c = host("c", 10, 100);
    let mut other_namespace = spread(vm("k9", 4, 1), "kafka");
    other_namespace.key = ObjectKey::namespaced("other", "k9");
    other_namespace.spread_group = Some(ObjectKey::namespaced("other", "kafka"));
    let plan = plan(&input(
        vec![a, b, c],
        vec![
            spread(vm("k1", 4, 1), "kafka"),
            spread(vm("k2", 4, 1), "kafka"),
            spread(vm("k3", 4, 1), "kafka"),
            other_namespace,
        ],
    ));
    let racks: Vec<String> = ["k1", "k2"].iter().map(|k| host_of(&plan, k).unwrap()).collect();
    assert!(racks.contains(&"c".to_string()), "one member must use the other rack: {racks:?}");
    assert_eq!(host_of(&plan, "k3"), None, "two racks hold two members");
    assert!(plan.vms.iter().any(|v| v.vm == ObjectKey::namespaced("other", "k9") && v.host.is_some()));
}

#[test]
fn running_vms_never_move_and_overcommit_is_reported_on_the_host() {
    let mut running = vm("running", 12, 1);
    running.placed = Some("a".into());
    let plan = plan(&input(vec![host("a", 10, 100), host("b", 100, 100)], vec![running]));
    assert_eq!(host_of(&plan, "running").as_deref(), Some("a"));
    assert_eq!(plan.vms[0].decision, Decision::Placed);
    let violation = &plan.violations[0];
    assert_eq!((&violation.object, violation.resource.as_str()), (&super::Subject::host("a"), "cpu"));
    assert_eq!(violation.shortfall.as_deref(), Some("2"));
}

#[test]
fn unschedulable_hosts_keep_their_vms_and_take_no_new_ones() {
    let mut cordoned = host("a", 100, 100);
    cordoned.schedulable = false;
    let mut running = vm("running", 4, 1);
    running.placed = Some("a".into());
    let mut pinned = vm("pinned", 4, 1);
    pinned.pinned = Some("a".into());
    let plan = plan(&input(
        vec![cordoned, host("b", 8, 100)],
        vec![running, pinned, vm("new", 4, 1), vm("newer", 4, 1), vm("newest", 4, 1)],
    ));
    assert_eq!(host_of(&plan, "running").as_deref(), Some("a"));
    assert_eq!(host_of(&plan, "pinned"), None);
    assert_eq!(plan.hosts[0].vms, [key("running")]);
    assert_eq!(plan.unplaced().count(), 2);
    assert!(
        plan.violations
            .iter()
            .any(|v| v.object == super::Subject::vm(&key("pinned")) && v.message.contains("not schedulable"))
    );
}

#[test]
fn pinned_vms_take_their_host_or_report_why_not() {
    let mut fits = vm("fits", 4, 1);
    fits.pinned = Some("a".into());
    let mut too_big = vm("too-big", 8, 1);
    too_big.pinned = Some("a".into());
    let mut unknown = vm("unknown", 1, 1);
    unknown.pinned = Some("nowhere".into());
    let plan = plan(&input(vec![host("a", 10, 100), host("b", 100, 100)], vec![fits, too_big, unknown]));
    // too-big is larger, so it is pinned first; fits then finds only 2 cores left.
    assert_eq!(host_of(&plan, "too-big").as_deref(), Some("a"));
    assert_eq!(host_of(&plan, "fits"), None);
    assert_eq!(
        resources_of(&plan),
        [
            ("CatalystVM ns/fits".to_string(), "cpu".to_string()),
            ("CatalystVM ns/unknown".to_string(), "host".to_string())
        ]
    );
}

#[test]
fn host_selectors_restrict_candidates() {
    let mut fast = host("fast", 10, 100);
    fast.labels.insert("disk".into(), "nvme".into());
    let mut wants_nvme = vm("db", 4, 1);
    wants_nvme.host_selector.insert("disk".into(), "nvme".into());
    let mut wants_gpu = vm("ml", 4, 1);
    wants_gpu.host_selector.insert("gpu".into(), "yes".into());
    let plan = plan(&input(vec![fast, host("slow", 100, 100)], vec![wants_nvme, wants_gpu]));
    assert_eq!(host_of(&plan, "db").as_deref(), Some("fast"));
    assert_eq!(resources_of(&plan), [("CatalystVM ns/ml".to_string(), "hostSelector".to_string())]);
}

/// A host with 1Gi hugepage pools: `cells` NUMA cells of `cores` single-thread cores and `pages`
/// pages each, under the kubelet's defaults (no topology manager, no memory manager).
fn pooled_host(name: &str, cells: u64, cores: u64, pages: u64) -> HostModel {
    let mut pooled = host(name, cells * cores, 100);
    pooled.allocatable.hugepages_1gi = cells * pages * GI;
    pooled.numa = Some(HostCells {
        threads: 1,
        cores: vec![cores as u32; cells as usize],
        reserved: vec![0; cells as usize],
        pools: vec![[pages, 0]; cells as usize],
        memory: vec![1 << 40; cells as usize],
        policy: TopologyManagerPolicy::None,
        memory_manager: MemoryManagerPolicy::None,
    });
    pooled
}

/// A VM of `cpu` vCPUs and an emulator thread, backed by `memory_gi` of 1Gi hugepages, with NUMA
/// passthrough or without.
fn hugepage_vm(name: &str, cpu: u64, memory_gi: u64, passthrough: bool) -> VmModel {
    let demand = Res::cores(cpu + 1, GI) + Res::hugepages(HugepageSize::OneGibibyte, memory_gi * GI);
    VmModel {
        demand,
        pinned_cpus: cpu + 1,
        passthrough,
        hugepages: Some((HugepageSize::OneGibibyte, memory_gi)),
        ..vm(name, cpu, 1)
    }
}

/// Issue 21's dragonflydb: 48 vCPUs fit one 128-core cell, so the host kubelet packs its
/// launcher there and KubeVirt binds all 1,024 of its pages to that cell, which holds 512.
#[test]
fn a_passthrough_vm_whose_pages_overflow_the_cell_its_cpus_fit_is_refused() {
    let plan = plan_of(pooled_host("a", 2, 128, 512), vec![hugepage_vm("dragonflydb", 48, 1024, true)]);
    assert_eq!(host_of(&plan, "dragonflydb"), None);
    let refusal = &plan.violations[0];
    assert_eq!(refusal.resource, "numa");
    assert_eq!(
        refusal.message,
        "on host a, even alone, ns/dragonflydb does not start: KubeVirt binds its guest memory strictly to the \
         NUMA cells its vCPUs take, and asks 1024 1Gi pages of cell 0, which has 512 free; drop numaPassthrough \
         from ns/dragonflydb (its hugepages are then not bound to its cells), or shrink its memory to 512Gi (what \
         the pools of the cells its vCPUs need hold)"
    );
    // Either fix fits: no passthrough, or one cell's pool.
    assert!(plan_of(pooled_host("a", 2, 128, 512), vec![hugepage_vm("dragonflydb", 48, 1024, false)]).fits);
    assert!(plan_of(pooled_host("a", 2, 128, 512), vec![hugepage_vm("dragonflydb", 48, 512, true)]).fits);
}

/// The kubelet assigns in arrival order: a plan holds only if it holds in every order. `wide`
/// alone takes cell 0; after `small` it spans both cells and half its pages are due on cell 0,
/// which `small` has nearly emptied.
#[test]
fn a_vm_is_refused_when_some_launch_order_leaves_it_short() {
    let plan =
        plan_of(pooled_host("a", 2, 16, 32), vec![hugepage_vm("small", 7, 30, true), hugepage_vm("wide", 14, 8, true)]);
    // Largest first: `wide` is placed; `small` beside it would fail `wide` in one order.
    assert_eq!((host_of(&plan, "wide").as_deref(), host_of(&plan, "small")), (Some("a"), None));
    let message = &plan.violations[0].message;
    assert!(
        message
            .starts_with("on host a, when the launchers start in the order ns/small, ns/wide, ns/wide does not start"),
        "{message}"
    );
    assert!(message.contains("asks 4 1Gi pages of cell 0, which has 2 free"), "{message}");
    // On two hosts they fit apart.
    let plan = super::plan(&input(
        vec![pooled_host("a", 2, 16, 32), pooled_host("b", 2, 16, 32)],
        vec![hugepage_vm("small", 7, 30, true), hugepage_vm("wide", 14, 8, true)],
    ));
    assert!(plan.fits, "{:?}", plan.violations);
}

/// The reference layout's host: two 96-vCPU passthrough VMs of 512 pages on two cells of 128
/// CPUs and 512 pages (8 CPUs reserved on cell 0). Without a topology manager the second is
/// packed into the first one's cell and spills over, so half its pages are due there; a
/// topology manager keeps each on a cell of its own.
#[test]
fn a_topology_manager_is_what_lets_two_cell_sized_passthrough_vms_share_a_host() {
    let mut seed_host = pooled_host("host-1", 2, 128, 512);
    seed_host.allocatable.millicores = 248_000;
    let cells = seed_host.numa.as_mut().unwrap();
    cells.reserved = vec![8, 0];
    let pair = vec![hugepage_vm("kafka-1", 96, 512, true), hugepage_vm("timescaledb", 96, 512, true)];
    let plan = plan_of(seed_host.clone(), pair.clone());
    assert_eq!(plan.unplaced().count(), 1);
    let message = &plan.violations[0].message;
    assert!(message.contains("asks 256 1Gi pages of cell 0, which has 0 free"), "{message}");
    assert!(message.contains("topologyManagerPolicy best-effort or restricted"), "{message}");
    for policy in [TopologyManagerPolicy::BestEffort, TopologyManagerPolicy::Restricted] {
        seed_host.numa.as_mut().unwrap().policy = policy;
        let plan = plan_of(seed_host.clone(), pair.clone());
        assert!(plan.fits, "{policy:?}: {:?}", plan.violations);
    }
}

/// The exact search covers cells: best fit puts the large VM where the small one's pages are
/// due, then the small one fits nowhere; the search swaps them.
#[test]
fn the_search_finds_the_hosts_on_which_every_order_runs() {
    // `b` has the fewer free cores, so best fit sends `big` there first.
    let mut tight = pooled_host("b", 2, 12, 40);
    tight.allocatable.millicores = 24_000;
    let big = hugepage_vm("big", 14, 20, true);
    let small = hugepage_vm("small", 7, 36, true);
    let plan = plan(&input(vec![pooled_host("a", 2, 16, 40), tight], vec![big, small]));
    assert!(plan.fits, "{:?}", plan.violations);
}

/// Hugepages without passthrough are not bound to a cell (KubeVirt only binds memory for
/// `guestMappingPassthrough`): three 40-core hugepage VMs fit a host of two 63-core cells.
#[test]
fn hugepages_without_passthrough_take_from_the_whole_host() {
    let vms = (0..3).map(|i| hugepage_vm(&format!("v{i}"), 39, 64, false)).collect();
    let plan = plan_of(pooled_host("a", 2, 63, 100), vms);
    assert!(plan.fits, "{:?}", plan.violations);
}

/// A hugepage VM's guest memory comes from its host's pool of its page size, never from
/// ordinary memory: two 64Gi VMs do not fit a pool of 100 pages, whatever memory is free.
#[test]
fn a_full_hugepage_pool_refuses_the_next_vm() {
    let plan =
        plan_of(pooled_host("a", 1, 64, 100), vec![hugepage_vm("a", 8, 64, false), hugepage_vm("b", 8, 64, false)]);
    assert_eq!(host_of(&plan, "b"), None);
    let refusal = plan.violations.iter().find(|v| v.object == Subject::vm(&key("b"))).unwrap();
    assert_eq!(
        (refusal.resource.as_str(), refusal.requested.as_deref(), refusal.available.as_deref()),
        ("hugepages-1Gi", Some("64Gi"), Some("36Gi"))
    );
}

fn plan_of(host: HostModel, vms: Vec<VmModel>) -> Plan {
    plan(&input(vec![host], vms))
}

#[test]
fn service_groups_must_fit_what_their_vm_offers_in_name_order() {
    let mut vm_model = vm("app", 16, 64);
    vm_model.for_groups = Res::cores(15, 60 * GI);
    let group = |name: &str, replicas: u64, cpu: u64| GroupModel {
        key: key(name),
        vm: key("app"),
        replicas,
        cpu,
        demand: Res::cores(replicas * cpu, replicas * 4 * GI),
    };
    let mut layout = input(vec![host("a", 100, 100)], vec![vm_model]);
    layout.groups = vec![
        group("b-second", 2, 4),
        group("a-first", 3, 4),
        GroupModel { vm: key("missing"), ..group("c-orphan", 1, 1) },
    ];
    let plan = plan(&layout);
    let fits: Vec<(&str, bool)> = plan.groups.iter().map(|g| (g.group.name(), g.fits)).collect();
    assert_eq!(fits, [("a-first", true), ("b-second", false), ("c-orphan", false)]);
    assert_eq!(plan.groups[1].available, Some(Res::cores(3, 48 * GI)));
    let second = &plan.violations[0];
    assert_eq!(
        (second.resource.as_str(), second.requested.as_deref(), second.available.as_deref()),
        ("cpu", Some("8"), Some("3"))
    );
    assert_eq!(plan.violations[1].resource, "vm");
}

/// A VM without join credentials never becomes a node: its groups do not fit, whatever room it
/// has, and the plan says why (issue 10: the minimal sample's StatefulSets no node would take).
#[test]
fn a_group_on_a_vm_that_never_joins_does_not_fit() {
    let lonely = VmModel { joins: false, ..vm("lonely", 16, 64) };
    let mut layout = input(vec![host("a", 100, 100)], vec![lonely]);
    layout.groups =
        vec![GroupModel { key: key("web"), vm: key("lonely"), replicas: 1, cpu: 1, demand: Res::cores(1, GI) }];
    let plan = plan(&layout);
    assert!(!plan.groups[0].fits);
    assert_eq!(plan.violations[0].resource, "node");
    assert!(
        plan.violations[0].message.contains("VM ns/lonely has no spec.node.joinSecretName"),
        "{:?}",
        plan.violations
    );
}

#[test]
fn adding_hosts_answers_with_the_fewest_that_place_every_vm() {
    let layout = input(vec![host("a", 10, 100)], (1..=5).map(|i| vm(&format!("v{i}"), 6, 1)).collect());
    let more = hosts_needed(&layout, "a", SearchBudget::default()).unwrap();
    assert_eq!(more.add, Some(4), "one 6-core VM per 10-core host");
    assert_eq!(more.lower_bound, 2, "the totals alone: 24 cores short / 10 per host");
    assert!(more.proven_least, "three more are proven too few by the search");
    // A VM no such host takes is named, and the count answers for the others.
    let layout = input(vec![host("a", 10, 100)], vec![vm("giant", 11, 1), vm("v1", 6, 1), vm("v2", 6, 1)]);
    let more = hosts_needed(&layout, "a", SearchBudget::default()).unwrap();
    assert_eq!((more.add, more.never_fit.as_slice()), (Some(1), &[key("giant")][..]));
    assert!(hosts_needed(&layout, "nope", SearchBudget::default()).is_none());
}

#[test]
fn losing_a_host_strands_spread_members_that_have_nowhere_else_to_go() {
    let vms = vec![spread(vm("k1", 4, 1), "kafka"), spread(vm("k2", 4, 1), "kafka"), vm("loose", 4, 1)];
    let layout = input(vec![host("a", 100, 100), host("b", 100, 100)], vms);
    let base = plan(&layout);
    let loss = host_loss(&layout, &base, SearchBudget::default());
    assert_eq!(loss.len(), 2);
    for lost in &loss {
        let kafka_here = base
            .hosts
            .iter()
            .find(|h| h.name == lost.host)
            .unwrap()
            .vms
            .iter()
            .filter(|v| v.name().starts_with('k'))
            .count();
        assert_eq!(lost.stranded.len(), kafka_here, "{lost:?}");
        if kafka_here > 0 {
            assert!(matches!(lost.verdict, Verdict::DoesNotFit { .. }), "{lost:?}");
        }
        assert!(lost.replaced.iter().all(|(_, to)| *to != lost.host));
    }
}

// --- properties -------------------------------------------------------------------------------

fn arbitrary_layout() -> impl Strategy<Value = PlanInput> {
    let hosts = prop::collection::vec((8u64..64, 16u64..256, 0usize..3, any::<bool>(), 0u8..10), 1..8);
    let vms = prop::collection::vec((1u64..40, 1u64..120, prop::option::of(0usize..3), 0u8..10, 0u8..10), 0..30);
    (hosts, vms).prop_map(|(hosts, vms)| {
        let hosts: Vec<HostModel> = hosts
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, memory, rack, labelled, cordon))| {
                let mut h = host(&format!("h{i}"), cpu, memory);
                h.failure_domain = if rack == 0 { h.name.clone() } else { format!("rack-{rack}") };
                if labelled {
                    h.labels.insert("tier".into(), "fast".into());
                }
                h.schedulable = cordon != 0;
                h
            })
            .collect();
        let host_count = hosts.len();
        let vms = vms
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, memory, group, placement, selector))| {
                let mut v = vm(&format!("v{i}"), cpu, memory);
                v.spread_group = group.map(|g| key(&format!("g{g}")));
                match placement {
                    0 => v.placed = Some(format!("h{}", i % host_count)),
                    1 => v.pinned = Some(format!("h{}", i % host_count)),
                    _ => {}
                }
                if selector == 0 {
                    v.host_selector.insert("tier".into(), "fast".into());
                }
                v
            })
            .collect();
        PlanInput { hosts, vms, groups: Vec::new() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn never_overcommits_a_host_beyond_what_already_runs_there(layout in arbitrary_layout()) {
        let plan = plan(&layout);
        for h in &plan.hosts {
            let running: Res = layout.vms.iter().filter(|v| v.placed.as_deref() == Some(h.name.as_str())).fold(Res::ZERO, |s, v| s + v.demand);
            if h.allocatable.covers(&running) {
                prop_assert!(h.allocatable.covers(&h.allocated), "{} overcommitted: {:?} > {:?}", h.name, h.allocated, h.allocatable);
            } else {
                prop_assert_eq!(h.allocated, running, "nothing new may join an overcommitted host");
            }
        }
    }

    #[test]
    fn never_puts_two_new_spread_members_in_one_failure_domain(layout in arbitrary_layout()) {
        let plan = plan(&layout);
        let domain: BTreeMap<&str, &str> = plan.hosts.iter().map(|h| (h.name.as_str(), h.failure_domain.as_str())).collect();
        let mut seen: BTreeMap<(ObjectKey, String), Decision> = BTreeMap::new();
        for p in &plan.vms {
            let Some(host) = &p.host else { continue };
            let vm = layout.vms.iter().find(|v| v.key == p.vm).unwrap();
            let Some(group) = &vm.spread_group else { continue };
            let key = (group.clone(), domain[host.as_str()].to_string());
            if let Some(first) = seen.insert(key, p.decision) {
                prop_assert!(first == Decision::Placed && p.decision == Decision::Placed, "{} joined a domain its group already holds", p.vm);
            }
        }
    }

    #[test]
    fn does_not_depend_on_input_order(layout in arbitrary_layout(), seed in any::<u64>()) {
        let mut shuffled = layout.clone();
        let mut state = seed | 1;
        let mut next = move |bound: usize| { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state % bound as u64) as usize };
        for i in (1..shuffled.vms.len()).rev() { let j = next(i + 1); shuffled.vms.swap(i, j); }
        for i in (1..shuffled.hosts.len()).rev() { let j = next(i + 1); shuffled.hosts.swap(i, j); }
        prop_assert_eq!(plan(&layout), plan(&shuffled));
    }

    #[test]
    fn never_moves_a_placed_vm(layout in arbitrary_layout()) {
        let plan = plan(&layout);
        let hosts: Vec<&str> = layout.hosts.iter().map(|h| h.name.as_str()).collect();
        for vm in layout.vms.iter().filter(|v| v.placed.is_some()) {
            let p = plan.vms.iter().find(|p| p.vm == vm.key).unwrap();
            if hosts.contains(&vm.placed.as_deref().unwrap()) {
                prop_assert_eq!(p.host.as_deref(), vm.placed.as_deref());
                prop_assert_eq!(p.decision, Decision::Placed);
            }
        }
    }

    #[test]
    fn every_unplaced_vm_and_only_those_are_explained(layout in arbitrary_layout()) {
        let plan = plan(&layout);
        for p in plan.unplaced() {
            let object = super::Subject::vm(&p.vm);
            prop_assert!(plan.violations.iter().any(|v| v.object == object), "{} unplaced without a reason", p.vm);
        }
        prop_assert_eq!(plan.fits, plan.violations.is_empty());
    }
}

/// Two hosts of 12 cores and VMs of 5, 5, 4, 4, 3, 3 cores (4, 4, 3, 3, 2, 2 plus each one's
/// emulator thread): best fit decreasing puts 5 + 5 on one host and strands a VM; the search
/// finds {5, 4, 3} + {5, 4, 3}.
#[test]
fn a_layout_best_fit_decreasing_refuses_is_packed_by_the_search() {
    let sizes = [5, 5, 4, 4, 3, 3];
    let vms = sizes.iter().enumerate().map(|(i, &cpu)| vm(&format!("v{i}"), cpu, 1)).collect();
    let plan = plan(&input(vec![host("a", 12, 64), host("b", 12, 64)], vms));
    assert!(plan.fits, "{:?}", plan.violations);
    assert_eq!(plan.verdict, Verdict::Fits);
    for h in &plan.hosts {
        assert_eq!(h.allocated.millicores, 12_000, "{} holds {:?}", h.name, h.vms);
    }
}

#[test]
fn a_misfit_says_what_proves_it() {
    // The totals: 13 cores on 12.
    let over = plan(&input(vec![host("a", 6, 64), host("b", 6, 64)], vec![vm("x", 7, 1), vm("y", 6, 1)]));
    assert!(
        matches!(&over.verdict, Verdict::DoesNotFit { proof } if proof.starts_with("capacity bound")),
        "{:?}",
        over.verdict
    );
    // One VM larger than any host.
    let big = plan(&input(vec![host("a", 6, 64), host("b", 6, 64)], vec![vm("x", 7, 1)]));
    assert!(
        matches!(&big.verdict, Verdict::DoesNotFit { proof } if proof.contains("ns/x fits no host")),
        "{:?}",
        big.verdict
    );
    // Three spread members, two failure domains.
    let members = (0..3).map(|i| spread(vm(&format!("m{i}"), 1, 1), "g")).collect();
    let spread_out = plan(&input(vec![host("a", 8, 64), host("b", 8, 64)], members));
    assert!(
        matches!(&spread_out.verdict, Verdict::DoesNotFit { proof } if proof.starts_with("spread bound")),
        "{:?}",
        spread_out.verdict
    );
    // Room in total, but only a search shows no packing: 4 + 4 + 4 on hosts of 6 and 6.
    let search =
        plan(&input(vec![host("a", 6, 64), host("b", 6, 64)], (0..3).map(|i| vm(&format!("v{i}"), 4, 1)).collect()));
    assert!(
        matches!(&search.verdict, Verdict::DoesNotFit { proof } if proof.starts_with("an exhaustive search")),
        "{:?}",
        search.verdict
    );
}

#[test]
fn a_search_that_runs_out_of_budget_says_so() {
    // 40 hosts of 4 cores and 41 VMs of 3: the totals allow it (160 cores for 123), but each
    // host holds one VM. Ten placements are not enough to find that out.
    let hosts = (0..40).map(|i| host(&format!("h{i:02}"), 4, 64)).collect();
    let vms = (0..41).map(|i| vm(&format!("v{i:02}"), 3, 1)).collect();
    let tight = SearchBudget { nodes: 10, time: std::time::Duration::from_secs(60) };
    let plan = plan_within(&input(hosts, vms), tight);
    assert_eq!(plan.verdict, Verdict::NotFoundWithinBudget { searched: 11 });
}

/// Every assignment of VMs to hosts, written plainly: whether one keeps every constraint.
fn oracle_packs(layout: &PlanInput) -> bool {
    fn place(layout: &PlanInput, i: usize, used: &mut Vec<Res>, taken: &mut Vec<(ObjectKey, String)>) -> bool {
        let Some(vm) = layout.vms.get(i) else { return true };
        for (h, host) in layout.hosts.iter().enumerate() {
            if !host.schedulable || !vm.host_selector.iter().all(|(k, v)| host.labels.get(k) == Some(v)) {
                continue;
            }
            if !host.allocatable.covers(&(used[h] + vm.demand)) {
                continue;
            }
            if let Some(group) = &vm.spread_group
                && taken.iter().any(|(g, d)| g == group && *d == host.failure_domain)
            {
                continue;
            }
            used[h] += vm.demand;
            if let Some(group) = &vm.spread_group {
                taken.push((group.clone(), host.failure_domain.clone()));
            }
            let packed = place(layout, i + 1, used, taken);
            used[h] = used[h] - vm.demand;
            if vm.spread_group.is_some() {
                taken.pop();
            }
            if packed {
                return true;
            }
        }
        false
    }
    place(layout, 0, &mut vec![Res::ZERO; layout.hosts.len()], &mut Vec::new())
}

/// Small tight layouts: 2 to 4 hosts (some sharing a rack, some labelled), 4 to 12 VMs that
/// together fill most of them, some in spread groups or with a selector.
fn tight_layout() -> impl Strategy<Value = PlanInput> {
    let hosts = prop::collection::vec((6u64..=16, 0u8..3, any::<bool>()), 2..=4);
    (hosts, 4usize..=12, any::<u64>()).prop_map(|(hosts, count, seed)| {
        let mut state = seed | 1;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let hosts: Vec<HostModel> = hosts
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, rack, labelled))| {
                let mut h = host(&format!("h{i}"), cpu, 64);
                if rack > 0 {
                    h.failure_domain = format!("rack-{rack}");
                }
                if labelled {
                    h.labels.insert("tier".into(), "fast".into());
                }
                h
            })
            .collect();
        // Fill 85 to 100% of the cores with VMs of 1 to 6 cores.
        let total: u64 = hosts.iter().map(|h| h.allocatable.millicores / 1000).sum();
        let target = total * (85 + next(16)) / 100;
        let mut vms = Vec::new();
        let mut filled = 0;
        while vms.len() < count && filled < target {
            let cpu = (1 + next(6)).min(target - filled).max(1);
            let mut v = vm(&format!("v{:02}", vms.len()), cpu, 1 + next(8));
            match next(6) {
                0 | 1 => v.spread_group = Some(key(&format!("g{}", next(2)))),
                2 => {
                    v.host_selector.insert("tier".into(), "fast".into());
                }
                _ => {}
            }
            filled += cpu;
            vms.push(v);
        }
        PlanInput { hosts, vms, groups: Vec::new() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_refuses_a_layout_an_exhaustive_search_packs(layout in tight_layout()) {
        let plan = plan(&layout);
        let packs = oracle_packs(&layout);
        prop_assert_eq!(plan.fits, packs, "plan {:?} vs oracle {}", plan.verdict, packs);
        if !packs {
            prop_assert!(matches!(plan.verdict, Verdict::DoesNotFit { .. }), "a small misfit is proven: {:?}", plan.verdict);
        }
        // What it places keeps every constraint.
        let domain: BTreeMap<&str, &str> = plan.hosts.iter().map(|h| (h.name.as_str(), h.failure_domain.as_str())).collect();
        let mut groups_in: Vec<(ObjectKey, &str)> = Vec::new();
        for h in &plan.hosts {
            prop_assert!(h.allocatable.covers(&h.allocated), "{} overcommitted", h.name);
        }
        for p in plan.vms.iter().filter(|p| p.host.is_some()) {
            let vm = layout.vms.iter().find(|v| v.key == p.vm).unwrap();
            let host = layout.hosts.iter().find(|h| Some(&h.name) == p.host.as_ref()).unwrap();
            prop_assert!(vm.host_selector.iter().all(|(k, v)| host.labels.get(k) == Some(v)));
            if let Some(group) = &vm.spread_group {
                let d = domain[host.name.as_str()];
                prop_assert!(!groups_in.contains(&(group.clone(), d)), "{} breaks spread group {}", p.vm, group);
                groups_in.push((group.clone(), d));
            }
        }
    }
}

#[test]
fn the_memory_the_node_keeps_for_eviction_is_the_threshold_the_kubelet_is_given() {
    let rendered = model::EVICTION_HARD.iter().find(|(signal, _)| *signal == "memory.available").unwrap().1;
    assert_eq!(crate::quantity::parse_bytes(rendered).unwrap(), model::EVICTION_HARD_MEMORY);
}

/// The worked example, from the objects as a user writes them: a 29-core VM (30 cores
/// with its emulator thread) on a 32-core host that reserves 2 was planned "30/30, fits", but its
/// launcher pod asks 30.015 CPUs with the console-log sidecar, and stays Pending with
/// `Insufficient cpu`. Without the sidecar (`disableSerialConsoleLog`) it fits exactly.
#[test]
fn a_vm_filling_its_host_to_the_last_core_leaves_its_launcher_pending() {
    let host: catalyst_api::CatalystHost = serde_json::from_value(serde_json::json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": "h"},
        "spec": {"nodeName": "h", "capacity": {"cpu": 32, "memory": "256Gi"}, "reserved": {"cpu": 2, "memory": "8Gi"}}
    }))
    .unwrap();
    let vm: catalyst_api::CatalystVM = serde_json::from_value(serde_json::json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM", "metadata": {"name": "big", "namespace": "ns"},
        "spec": {"cpu": 29, "memory": "128Gi", "bootDisk": {"persistentVolumeClaim": {"claimName": "root"}}}
    }))
    .unwrap();
    let layout = |overhead: &Overhead| PlanInput {
        hosts: vec![HostModel::from_host(&host)],
        vms: vec![VmModel::from_vm(&vm, overhead)],
        groups: Vec::new(),
    };
    let plan = plan(&layout(&Overhead::default()));
    assert_eq!(plan.vms[0].demand.millicores, 30_015);
    assert_eq!(host_of(&plan, "big"), None);
    assert_eq!((plan.violations[0].resource.as_str(), plan.violations[0].shortfall.as_deref()), ("cpu", Some("15m")));
    let without_sidecar = Overhead { console_log: None, ..Overhead::default() };
    assert!(super::plan(&layout(&without_sidecar)).fits);
}

/// On an SMT host whose kubelet runs the static CPU manager with `full-pcpus-only`, a container
/// asking a CPU count that is not a multiple of the threads per core is refused at admission
/// (`SMTAlignmentError`, kubernetes `pkg/kubelet/cm/cpumanager/policy_static.go`): 96 vCPUs
/// and an emulator thread pin 97 CPUs. 95 vCPUs pin 96, and so does 96 under KubeVirt's
/// AlignCPUs, which gives the emulator two.
#[test]
fn an_smt_host_refuses_a_vm_that_would_split_a_physical_core() {
    let smt = HostModel { threads_per_core: 2, ..host("smt", 200, 1000) };
    let odd = vm("odd", 97, 64);
    let plan = plan(&input(vec![smt.clone()], vec![odd]));
    assert_eq!(host_of(&plan, "odd"), None);
    assert_eq!(plan.violations[0].resource, "threadsPerCore");
    assert!(plan.violations[0].message.contains("pins 97 CPUs"), "{}", plan.violations[0].message);
    assert!(plan.violations[0].message.contains("SMTAlignmentError"), "{}", plan.violations[0].message);
    let plan = super::plan(&input(vec![smt.clone()], vec![vm("even", 96, 64)]));
    assert!(plan.fits, "{:?}", plan.violations);
    // Issue 21: 15 vCPUs and an emulator thread make 16 host CPUs, whole cores on the host, but
    // 15 single-thread cores in the guest on 8 physical cores.
    let split = VmModel { pinned_cpus: 16, ..vm("split", 15, 64) };
    let plan = super::plan(&input(vec![smt.clone()], vec![split]));
    assert_eq!(plan.violations[0].resource, "threadsPerCore");
    assert!(plan.violations[0].message.contains("its 15 vCPUs are not whole cores"), "{}", plan.violations[0].message);
    assert!(plan.violations[0].message.contains("AlignCPUs"), "{}", plan.violations[0].message);
    // 16 vCPUs with AlignCPUs' two emulator threads: 18 host CPUs, 8 guest cores of two threads.
    let aligned = VmModel { pinned_cpus: 18, ..vm("aligned", 16, 64) };
    assert!(super::plan(&input(vec![smt], vec![aligned])).fits);
}

/// A VM on an SMT host sees whole cores of two threads, so its kubelet (`full-pcpus-only`)
/// admits only replicas of whole cores and reserves a whole core for the system.
#[test]
fn replicas_in_a_vm_on_an_smt_host_take_whole_cores() {
    let smt = HostModel { threads_per_core: 2, ..host("smt", 200, 1000) };
    let vm_model = VmModel { for_groups: Res::cores(15, 60 * GI), ..vm("app", 16, 64) };
    let group = |name: &str, replicas: u64, cpu: u64| GroupModel {
        key: key(name),
        vm: key("app"),
        replicas,
        cpu,
        demand: Res::cores(replicas * cpu, replicas * GI),
    };
    let mut layout = input(vec![smt], vec![vm_model]);
    layout.groups = vec![group("odd", 1, 3), group("even", 7, 2)];
    let plan = plan(&layout);
    let odd = plan.violations.iter().find(|v| v.object == Subject::group(&key("odd"))).unwrap();
    assert_eq!(odd.resource, "threadsPerCore");
    assert!(odd.message.contains("SMTAlignmentError"), "{}", odd.message);
    // 16 vCPUs less 2 reserved (1, rounded up to a whole core): 14 cores for 7 x 2.
    let even = plan.groups.iter().find(|g| g.group == key("even")).unwrap();
    assert!(even.fits, "{:?}", plan.violations);
    assert_eq!(even.available.unwrap().millicores, 14_000);
}
