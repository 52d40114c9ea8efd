//! The capacity planner: where each VM goes, whether each ServiceGroup fits its VM, and
//! every reason a layout does not fit. Pure and deterministic: the same objects in any
//! order give the same plan. Used by the operator and offline by `kubectl catalyst plan`.
//!
//! ## Model
//! Dedicated resources, no overcommit. A host offers `capacity - reserved`. A VM takes its
//! cores (plus one for its emulator thread when isolated) and its memory plus the launcher
//! pod's overhead ([`Overhead`]). A ServiceGroup takes `replicas x (cpu, memory)` from what
//! its VM's node offers them: its allocatable less the headroom kept for node-level
//! DaemonSets ([`model::offered_to_groups`]).
//!
//! ## Heuristic: best-fit decreasing over an ordered index, spread-aware
//! VMs are placed in three passes: those already running (their status names a host: they
//! never move), those pinned by `spec.host`, then the rest, largest first (cores, then
//! memory; members of spread groups before loose VMs of the same size, as they have fewer
//! places to go). Each of the rest goes to the feasible host with the *least* free cores that
//! still holds it (ties: least free memory, then name): best fit keeps large holes open for
//! the large VMs still to come, which first fit squanders, and decreasing order is what
//! gives best fit its 11/9 OPT + 6/9 bound in one dimension. Cores are the scarce, never
//! shared resource here, so they are the primary dimension; memory, spread groups, host
//! selectors and NUMA cells are checked on each candidate.
//!
//! Schedulable hosts sit in a `BTreeSet` keyed by (free cores, free memory, index), so the
//! tightest host is found with one range query from the VM's demand, O(log m), and moving a
//! host after a placement is two O(log m) updates: O(n log n + n log m) in all when the first
//! candidates in range are feasible, which is the common case. Candidates skipped for
//! memory, spread, selector or NUMA cost a step each; the benchmark measures real layouts.

pub mod evacuate;
mod kubelet;
pub mod model;
mod numa;
pub mod overhead;
pub mod picture;
pub mod report;
pub mod res;
pub mod search;
pub mod whatif;

pub use model::{GroupModel, HostCells, HostModel, VmModel};
pub use overhead::Overhead;
pub use res::Res;
pub use search::SearchBudget;

use crate::key::ObjectKey;
use crate::manifest::Manifests;
use crate::quantity::{HumanBytes, HumanCores, format_millicores};
use catalyst_api::vm::HugepageSize;
use kubelet::Launcher;
use numa::CellRefusal;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// Everything the planner reads, already resolved into numbers.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub hosts: Vec<HostModel>,
    pub vms: Vec<VmModel>,
    pub groups: Vec<GroupModel>,
}

impl PlanInput {
    /// The layout of `manifests` on the hosts of `pool` (the others are not the planner's to use).
    pub fn from_manifests(manifests: &Manifests, overhead: &Overhead, pool: &crate::pool::HostPool) -> Self {
        Self {
            hosts: manifests
                .hosts
                .iter()
                .filter(|h| pool.contains(kube::ResourceExt::labels(*h)))
                .map(HostModel::from_host)
                .collect(),
            vms: manifests.vms.iter().map(|vm| VmModel::from_vm(vm, overhead)).collect(),
            groups: manifests.groups.iter().map(GroupModel::from_group).collect(),
        }
    }
}

/// How a VM got its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Already runs there (its status names the host); never moved.
    Placed,
    /// `spec.host` names the host.
    Pinned,
    /// Chosen by the planner.
    Planned,
    /// No host can take it; see the violations.
    Unplaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPlan {
    pub name: String,
    pub node_name: String,
    pub failure_domain: String,
    pub schedulable: bool,
    pub allocatable: Res,
    pub allocated: Res,
    /// allocatable - allocated, never below zero (an overcommitted host is a violation).
    pub free: Res,
    /// The VMs on the host, in plan order.
    pub vms: Vec<ObjectKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmPlan {
    pub vm: ObjectKey,
    /// What it takes from its host, overheads included.
    pub demand: Res,
    pub host: Option<String>,
    pub decision: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    pub group: ObjectKey,
    pub vm: ObjectKey,
    pub replicas: u64,
    /// replicas x per-replica cores and memory.
    pub demand: Res,
    /// What the VM had left for this group (after the groups before it), when the VM exists.
    pub available: Option<Res>,
    pub fits: bool,
}

/// One reason the layout does not fit, naming the object and, where it is about capacity,
/// the resource, what was requested, what was available and the shortfall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Such as `CatalystVM catalyst-v3/kafka-1`.
    pub object: Subject,
    /// `cpu`, `memory`, or a constraint such as `spreadGroup`, `host`, `numa`, `vm`.
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<String>,
    pub message: String,
}

/// The object a violation is about: its kind and key. Written `CatalystVM team/api`, in the
/// tables and in `-o json|yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub kind: SubjectKind,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    CatalystHost,
    CatalystVM,
    ServiceGroup,
}

impl Subject {
    pub fn host(name: &str) -> Self {
        Self { kind: SubjectKind::CatalystHost, key: name.to_string() }
    }

    pub fn vm(key: &ObjectKey) -> Self {
        Self { kind: SubjectKind::CatalystVM, key: key.to_string() }
    }

    pub fn group(key: &ObjectKey) -> Self {
        Self { kind: SubjectKind::ServiceGroup, key: key.to_string() }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.key)
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why `about` was refused: the messages of its violations, joined.
pub fn reasons(violations: &[Violation], about: &Subject) -> String {
    violations.iter().filter(|v| v.object == *about).map(|v| v.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// The layout's totals, computed from the objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// What all VMs take from hosts, overheads included.
    pub demand: Res,
    /// What all hosts offer (capacity - reserved).
    pub allocatable: Res,
    /// demand - allocatable where demand is larger: no packing can fit a layout with a shortfall.
    pub shortfall: Res,
}

/// How sure the plan's answer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Verdict {
    /// Everything fits: the plan shows the packing.
    Fits,
    /// Proven: no packing fits; `proof` says which bound or search shows it.
    #[serde(rename_all = "camelCase")]
    DoesNotFit { proof: String },
    /// The heuristic left VMs out and the search ran out of its budget after `searched`
    /// placements, before finding a packing or proving there is none.
    #[serde(rename_all = "camelCase")]
    NotFoundWithinBudget { searched: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub fits: bool,
    pub verdict: Verdict,
    pub totals: Totals,
    pub hosts: Vec<HostPlan>,
    /// In plan order: running VMs, pinned VMs, then the rest largest first; unplaced last.
    pub vms: Vec<VmPlan>,
    pub groups: Vec<GroupPlan>,
    pub violations: Vec<Violation>,
}

impl Plan {
    /// Violations that adding hosts could cure: VMs without a host.
    pub fn unplaced(&self) -> impl Iterator<Item = &VmPlan> {
        self.vms.iter().filter(|vm| vm.decision == Decision::Unplaced)
    }
}

/// Plans a layout with the default search budget. Inputs are sorted first, so their order
/// never matters.
pub fn plan(input: &PlanInput) -> Plan {
    plan_within(input, SearchBudget::default())
}

/// Plans a layout: the heuristic, then, when it leaves a VM out, the exact search within
/// `budget` ([`search`]).
pub fn plan_within(input: &PlanInput, budget: SearchBudget) -> Plan {
    let mut hosts: Vec<&HostModel> = input.hosts.iter().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut vms: Vec<&VmModel> = input.vms.iter().collect();
    vms.sort_by(|a, b| a.key.cmp(&b.key));
    let mut engine = Engine::new(&hosts);
    let mut violations = Vec::new();
    let mut order: Vec<(usize, Option<usize>, Decision)> = Vec::with_capacity(vms.len());

    // 1. Running VMs stay where they are, whatever it costs.
    for (v, vm) in vms.iter().enumerate() {
        let Some(host_name) = &vm.placed else { continue };
        match engine.host_index(host_name) {
            Some(h) => {
                if let Some(group) = &vm.spread_group
                    && engine.spread_blocks(group, h)
                {
                    violations.push(Violation::constraint(
                        vm_object(vm),
                        "spreadGroup",
                        format!(
                            "runs on {host_name} beside another member of spread group {group} in failure domain {}",
                            hosts[h].failure_domain
                        ),
                    ));
                }
                engine.commit(vm, h);
                order.push((v, Some(h), Decision::Placed));
            }
            None => {
                violations.push(Violation::constraint(
                    vm_object(vm),
                    "host",
                    format!("its status places it on {host_name}, which is not a CatalystHost in this layout"),
                ));
                order.push((v, None, Decision::Unplaced));
            }
        }
    }
    for (host, used) in hosts.iter().zip(&engine.used) {
        violations.extend(overcommit_violations(host, *used));
    }

    // 2. Pinned VMs go to their host or nowhere.
    let mut pinned: Vec<usize> =
        (0..vms.len()).filter(|&v| vms[v].placed.is_none() && vms[v].pinned.is_some()).collect();
    pinned.sort_by(|&a, &b| size_order(vms[a], vms[b]).then(a.cmp(&b)));
    for v in pinned {
        let vm = vms[v];
        let host_name = vm.pinned.as_deref().unwrap_or_default();
        let placed = match engine.host_index(host_name) {
            None => {
                violations.push(Violation::constraint(
                    vm_object(vm),
                    "host",
                    format!("spec.host names {host_name}, which is not a CatalystHost in this layout"),
                ));
                None
            }
            Some(h) => match engine.check(vm, h) {
                Ok(()) => {
                    engine.commit(vm, h);
                    Some(h)
                }
                Err(refusal) => {
                    violations.extend(refusal.violations(vm, h, &engine));
                    None
                }
            },
        };
        order.push((v, placed, if placed.is_some() { Decision::Pinned } else { Decision::Unplaced }));
    }

    // 3. The rest: best-fit decreasing; when that leaves a VM out, the exact search.
    let FreePlacements { placed, unplaced, searched } = place_the_rest(&mut engine, &vms, budget);
    order.extend(placed);
    // Explained against the final state, so the numbers match the hosts table.
    for v in unplaced {
        violations.extend(engine.diagnose(vms[v]));
    }
    order.sort_by_key(|(_, host, _)| host.is_none());

    let vm_plans: Vec<VmPlan> = order
        .iter()
        .map(|&(v, h, decision)| VmPlan {
            vm: vms[v].key.clone(),
            demand: vms[v].demand,
            host: h.map(|h| hosts[h].name.clone()),
            decision,
        })
        .collect();
    let mut host_vms: Vec<Vec<ObjectKey>> = vec![Vec::new(); hosts.len()];
    for &(v, h, _) in &order {
        if let Some(h) = h {
            host_vms[h].push(vms[v].key.clone());
        }
    }
    let host_plans = hosts
        .iter()
        .zip(host_vms)
        .enumerate()
        .map(|(h, (host, vms))| HostPlan {
            name: host.name.clone(),
            node_name: host.node_name.clone(),
            failure_domain: host.failure_domain.clone(),
            schedulable: host.schedulable,
            allocatable: host.allocatable,
            allocated: engine.used[h],
            free: host.allocatable - engine.used[h],
            vms,
        })
        .collect();
    let host_of: HashMap<&ObjectKey, usize> = order.iter().filter_map(|&(v, h, _)| Some((&vms[v].key, h?))).collect();
    let host_threads = |vm: &ObjectKey| host_of.get(vm).map_or(1, |&h| hosts[h].threads_per_core);
    let (groups, group_violations) = fit_groups(&input.groups, &vms, host_threads);
    violations.extend(group_violations);

    let demand = input.vms.iter().fold(Res::ZERO, |sum, vm| sum + vm.demand);
    let allocatable = input.hosts.iter().fold(Res::ZERO, |sum, host| sum + host.allocatable);
    let verdict = match (violations.is_empty(), searched) {
        (true, _) => Verdict::Fits,
        (false, Some(search::Outcome::OutOfBudget(searched))) => Verdict::NotFoundWithinBudget { searched },
        (false, Some(search::Outcome::Impossible(proof))) => Verdict::DoesNotFit { proof },
        (false, _) => Verdict::DoesNotFit {
            proof: "every VM the planner may place has a host; what does not fit concerns running or pinned VMs, \
                    or ServiceGroups in their VMs, which no packing changes"
                .into(),
        },
    };
    Plan {
        fits: violations.is_empty(),
        verdict,
        totals: Totals { demand, allocatable, shortfall: demand - allocatable },
        hosts: host_plans,
        vms: vm_plans,
        groups,
        violations,
    }
}

/// Where the VMs neither running nor pinned go, and what the search concluded when it ran.
struct FreePlacements {
    /// (VM, host, decision) in placement order.
    placed: Vec<(usize, Option<usize>, Decision)>,
    unplaced: Vec<usize>,
    searched: Option<search::Outcome>,
}

/// Step 3 of [`plan_within`]: best-fit decreasing over the VMs neither running nor pinned;
/// when that leaves one out, the heuristic's placements are undone and the exact search runs
/// from the same state, and its packing replaces them when it finds one.
fn place_the_rest<'a>(engine: &mut Engine<'a>, vms: &[&'a VmModel], budget: SearchBudget) -> FreePlacements {
    let mut free: Vec<usize> = (0..vms.len()).filter(|&v| vms[v].placed.is_none() && vms[v].pinned.is_none()).collect();
    free.sort_by(|&a, &b| size_order(vms[a], vms[b]).then(a.cmp(&b)));
    let mut unplaced = Vec::new();
    let mut placed = Vec::with_capacity(free.len());
    let mut committed = Vec::with_capacity(free.len());
    for &v in &free {
        let vm = vms[v];
        match engine.best_fit(vm) {
            Some(h) => {
                engine.commit(vm, h);
                committed.push((v, h));
                placed.push((v, Some(h), Decision::Planned));
            }
            None => {
                unplaced.push(v);
                placed.push((v, None, Decision::Unplaced));
            }
        }
    }
    if unplaced.is_empty() {
        return FreePlacements { placed, unplaced, searched: None };
    }
    // The search starts where the heuristic did: running and pinned VMs only.
    for &(v, h) in committed.iter().rev() {
        engine.uncommit(vms[v], h);
    }
    match search::pack(engine, vms, &free, budget) {
        search::Outcome::Packed(packing) => {
            let placed = packing
                .into_iter()
                .map(|(v, h)| {
                    engine.commit(vms[v], h);
                    (v, Some(h), Decision::Planned)
                })
                .collect();
            FreePlacements { placed, unplaced: Vec::new(), searched: None }
        }
        outcome => {
            for &(v, h) in &committed {
                engine.commit(vms[v], h);
            }
            FreePlacements { placed, unplaced, searched: Some(outcome) }
        }
    }
}

/// Largest first: cores, then memory; spread-group members before loose VMs. Ties fall to
/// the VMs' positions, which are in name order (cheaper than comparing the names again).
fn size_order(a: &VmModel, b: &VmModel) -> std::cmp::Ordering {
    b.demand
        .millicores
        .cmp(&a.demand.millicores)
        .then(b.demand.memory.cmp(&a.demand.memory))
        .then(b.spread_group.is_some().cmp(&a.spread_group.is_some()))
}

fn vm_object(vm: &VmModel) -> Subject {
    Subject::vm(&vm.key)
}

fn overcommit_violations(host: &HostModel, used: Res) -> Vec<Violation> {
    let allocatable = host.allocatable;
    let object = Subject::host(&host.name);
    Violation::shortfalls(&object, used, allocatable, "its running VMs take more than it offers")
}

impl Violation {
    fn constraint(object: Subject, resource: &str, message: String) -> Self {
        Self { object, resource: resource.into(), requested: None, available: None, shortfall: None, message }
    }

    /// Amounts in millicores; the message says cores (`30.015`), the fields are quantities.
    fn cpu(object: Subject, requested: u64, available: u64, context: &str) -> Self {
        let shortfall = requested.saturating_sub(available);
        Self {
            message: format!(
                "{object}: cpu: requested {} cores, available {}, short by {} ({context})",
                HumanCores(requested),
                HumanCores(available),
                HumanCores(shortfall)
            ),
            object,
            resource: "cpu".into(),
            requested: Some(format_millicores(requested)),
            available: Some(format_millicores(available)),
            shortfall: Some(format_millicores(shortfall)),
        }
    }

    fn memory(object: Subject, requested: u64, available: u64, context: &str) -> Self {
        let shortfall = requested.saturating_sub(available);
        Self {
            message: format!(
                "{object}: memory: requested {}, available {}, short by {} ({context})",
                HumanBytes(requested),
                HumanBytes(available),
                HumanBytes(shortfall)
            ),
            object,
            resource: "memory".into(),
            requested: Some(crate::quantity::format_bytes(requested)),
            available: Some(crate::quantity::format_bytes(available)),
            shortfall: Some(crate::quantity::format_bytes(shortfall)),
        }
    }

    fn hugepages(object: Subject, size: HugepageSize, requested: u64, available: u64, context: &str) -> Self {
        let resource = format!("hugepages-{}", size.as_str());
        let shortfall = requested.saturating_sub(available);
        Self {
            message: format!(
                "{object}: {resource}: requested {}, available {}, short by {} ({context})",
                HumanBytes(requested),
                HumanBytes(available),
                HumanBytes(shortfall)
            ),
            object,
            resource,
            requested: Some(crate::quantity::format_bytes(requested)),
            available: Some(crate::quantity::format_bytes(available)),
            shortfall: Some(crate::quantity::format_bytes(shortfall)),
        }
    }

    /// One violation per resource of `requested` that `available` does not cover.
    fn shortfalls(object: &Subject, requested: Res, available: Res, context: &str) -> Vec<Violation> {
        let mut found = Vec::new();
        if requested.millicores > available.millicores {
            found.push(Violation::cpu(object.clone(), requested.millicores, available.millicores, context));
        }
        if requested.memory > available.memory {
            found.push(Violation::memory(object.clone(), requested.memory, available.memory, context));
        }
        for size in [HugepageSize::OneGibibyte, HugepageSize::TwoMebibytes] {
            if requested.pool(size) > available.pool(size) {
                let (wanted, free) = (requested.pool(size), available.pool(size));
                found.push(Violation::hugepages(object.clone(), size, wanted, free, context));
            }
        }
        found
    }
}

/// Why a host cannot take a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Unschedulable,
    Selector,
    Spread(ObjectKey),
    Capacity,
    /// The host's kubelet and KubeVirt, placing its launchers on its NUMA cells, fail one of
    /// them in some order.
    Cells(Box<CellRefusal>),
    /// The host pins whole physical cores and the VM's CPU count is not a multiple of them.
    SmtAlignment,
}

impl Refusal {
    fn violations(&self, vm: &VmModel, h: usize, engine: &Engine) -> Vec<Violation> {
        let object = vm_object(vm);
        let host = engine.hosts[h];
        let message = match self {
            Refusal::Unschedulable => format!("host {} is not schedulable (spec.schedulable: false)", host.name),
            Refusal::Selector => format!("host {} does not match its hostSelector", host.name),
            Refusal::Spread(group) => format!(
                "host {} is in failure domain {}, which already holds a member of spread group {group}",
                host.name, host.failure_domain
            ),
            Refusal::Cells(refusal) => refusal.message(vm, host),
            Refusal::SmtAlignment => smt_message(vm, host),
            Refusal::Capacity => {
                let context = format!("on host {}", host.name);
                return Violation::shortfalls(&object, vm.demand, engine.free(h), &context);
            }
        };
        let resource = match self {
            Refusal::Spread(_) => "spreadGroup",
            Refusal::Cells(_) => "numa",
            Refusal::Selector => "hostSelector",
            Refusal::SmtAlignment => "threadsPerCore",
            _ => "host",
        };
        vec![Violation::constraint(object, resource, message)]
    }
}

/// Why an SMT host refuses the VM, and what would make it fit: whole cores on the host and in
/// the guest come from a vCPU count that is a multiple of the threads per core, with KubeVirt's
/// AlignCPUs completing the emulator thread to a core (the guest then has `threads: 2`).
fn smt_message(vm: &VmModel, host: &HostModel) -> String {
    let threads = host.threads_per_core;
    let fix = "give it a vCPU count that is a multiple of the threads per core and enable KubeVirt's AlignCPUs \
               (--align-cpus), whose second emulator thread completes its launcher to whole cores, so its guest has \
               whole cores too (threads: 2)";
    if host.takes_whole_cores(vm.pinned_cpus) {
        format!(
            "its {} vCPUs are not whole cores of host {}'s {threads} threads per core: its guest would see {} \
             single-thread cores pinned to sibling threads, and its kubelet would give two halves of one physical \
             core to two replicas as if each were exclusive; {fix}",
            vm.vcpus, host.name, vm.vcpus
        )
    } else {
        format!(
            "its launcher pins {} CPUs, not a multiple of host {}'s {threads} threads per core: the host kubelet's \
             full-pcpus-only refuses it (SMTAlignmentError); {fix}",
            vm.pinned_cpus, host.name
        )
    }
}

/// Mutable placement state over the sorted hosts.
struct Engine<'a> {
    hosts: &'a [&'a HostModel],
    by_name: HashMap<&'a str, usize>,
    used: Vec<Res>,
    /// The VMs on each host, in the order they were committed.
    on_host: Vec<Vec<&'a VmModel>>,
    /// What walking every launch order concluded, by host and launchers (sorted).
    walks: RefCell<HashMap<(usize, Vec<Launcher>), numa::Orders>>,
    /// Whether a walk ran out of its budget: the search then cannot call a layout impossible.
    undecided: std::cell::Cell<bool>,
    /// Failure domain of each host, interned.
    domain: Vec<usize>,
    /// Failure domains each spread group already occupies.
    spread: HashMap<&'a ObjectKey, Vec<usize>>,
    /// Schedulable hosts by (free cores, free memory, index).
    index: BTreeSet<(u64, u64, usize)>,
}

impl<'a> Engine<'a> {
    fn new(hosts: &'a [&'a HostModel]) -> Self {
        let mut domains: HashMap<&str, usize> = HashMap::new();
        let domain = hosts
            .iter()
            .map(|h| {
                let next = domains.len();
                *domains.entry(h.failure_domain.as_str()).or_insert(next)
            })
            .collect();
        let index = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.schedulable)
            .map(|(i, h)| (h.allocatable.millicores, h.allocatable.memory, i))
            .collect();
        Self {
            hosts,
            by_name: hosts.iter().enumerate().map(|(i, h)| (h.name.as_str(), i)).collect(),
            used: vec![Res::ZERO; hosts.len()],
            on_host: vec![Vec::new(); hosts.len()],
            walks: RefCell::new(HashMap::new()),
            undecided: std::cell::Cell::new(false),
            domain,
            spread: HashMap::new(),
            index,
        }
    }

    fn host_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    fn free(&self, h: usize) -> Res {
        self.hosts[h].allocatable - self.used[h]
    }

    fn spread_blocks(&self, group: &ObjectKey, h: usize) -> bool {
        self.spread.get(group).is_some_and(|domains| domains.contains(&self.domain[h]))
    }

    /// Every constraint but capacity.
    fn eligible(&self, vm: &VmModel, h: usize) -> Result<(), Refusal> {
        let host = self.hosts[h];
        if !host.schedulable {
            return Err(Refusal::Unschedulable);
        }
        if !vm.host_selector.iter().all(|(k, v)| host.labels.get(k) == Some(v)) {
            return Err(Refusal::Selector);
        }
        if !host.whole_cores_for(vm) {
            return Err(Refusal::SmtAlignment);
        }
        if let Some(group) = &vm.spread_group
            && self.spread_blocks(group, h)
        {
            return Err(Refusal::Spread(group.clone()));
        }
        Ok(())
    }

    /// All constraints.
    fn check(&self, vm: &VmModel, h: usize) -> Result<(), Refusal> {
        self.eligible(vm, h)?;
        if !self.free(h).covers(&vm.demand) {
            return Err(Refusal::Capacity);
        }
        self.cells_hold(vm, h)
    }

    fn commit(&mut self, vm: &'a VmModel, h: usize) {
        let before = self.free(h);
        self.used[h] += vm.demand;
        self.on_host[h].push(vm);
        if self.index.remove(&(before.millicores, before.memory, h)) {
            let after = self.free(h);
            self.index.insert((after.millicores, after.memory, h));
        }
        if let Some(group) = &vm.spread_group {
            self.spread.entry(group).or_default().push(self.domain[h]);
        }
    }

    /// Undoes [`Engine::commit`] of the last VM committed to `h` (the search backtracks in
    /// the reverse order of its commits).
    fn uncommit(&mut self, vm: &'a VmModel, h: usize) {
        let before = self.free(h);
        self.used[h] = self.used[h] - vm.demand;
        if let Some(i) = self.on_host[h].iter().rposition(|on| std::ptr::eq(*on, vm)) {
            self.on_host[h].remove(i);
        }
        if self.index.remove(&(before.millicores, before.memory, h)) {
            let after = self.free(h);
            self.index.insert((after.millicores, after.memory, h));
        }
        if let Some(group) = &vm.spread_group
            && let Some(domains) = self.spread.get_mut(group)
        {
            domains.pop();
        }
    }

    /// The schedulable host with the fewest free cores that takes the VM (ties: fewest free
    /// memory, then name order).
    fn best_fit(&self, vm: &VmModel) -> Option<usize> {
        self.index
            .range((vm.demand.millicores, 0, 0)..)
            .filter(|(_, free_memory, _)| *free_memory >= vm.demand.memory)
            .find_map(|&(_, _, h)| self.check(vm, h).ok().map(|()| h))
    }

    /// Why no host takes an unplaced VM: the shortfall on the host that comes closest, or
    /// the constraint that rules every host out.
    fn diagnose(&self, vm: &VmModel) -> Vec<Violation> {
        let object = vm_object(vm);
        // A VM that no eligible host's cells take even alone is refused for that, not for the room.
        let eligible: Vec<usize> = (0..self.hosts.len()).filter(|&h| self.eligible(vm, h).is_ok()).collect();
        let alone: Vec<Refusal> = eligible.iter().filter_map(|&h| self.cells_hold_beside(vm, h, &[]).err()).collect();
        if !eligible.is_empty() && alone.len() == eligible.len() {
            return alone[0].violations(vm, eligible[0], self);
        }
        let mut refusals: Vec<Refusal> = Vec::new();
        let mut closest: Option<(u128, usize)> = None;
        for h in 0..self.hosts.len() {
            match self.eligible(vm, h) {
                Err(refusal) => refusals.push(refusal),
                Ok(()) => {
                    let short = vm.demand - self.free(h);
                    // Weigh a millicore like the memory a millicore comes with on this host.
                    let host = self.hosts[h].allocatable;
                    let per_millicore = (host.memory / host.millicores.max(1)) as u128;
                    let bytes = short.memory as u128 + short.hugepages_1gi as u128 + short.hugepages_2mi as u128;
                    let score = short.millicores as u128 * per_millicore + bytes;
                    if closest.is_none_or(|(best, _)| score < best) {
                        closest = Some((score, h));
                    }
                }
            }
        }
        match closest {
            Some((0, h)) => match self.check(vm, h) {
                Err(refusal) => refusal.violations(vm, h, self),
                Ok(()) => vec![Violation::constraint(
                    object,
                    "host",
                    format!("host {} has the room for it once other VMs move", self.hosts[h].name),
                )],
            },
            Some((_, h)) => {
                let context = format!("the closest host is {}", self.hosts[h].name);
                Violation::shortfalls(&object, vm.demand, self.free(h), &context)
            }
            None if self.hosts.is_empty() => {
                vec![Violation::constraint(object, "host", "the layout has no CatalystHost".into())]
            }
            None => {
                let count = |wanted: fn(&Refusal) -> bool| refusals.iter().filter(|r| wanted(r)).count();
                let spread = count(|r| matches!(r, Refusal::Spread(_)));
                let selector = count(|r| matches!(r, Refusal::Selector));
                let cordoned = count(|r| matches!(r, Refusal::Unschedulable));
                let smt = count(|r| matches!(r, Refusal::SmtAlignment));
                let (resource, message) = if smt > 0 && spread == 0 && selector == 0 {
                    let host = self.hosts.iter().find(|h| !h.whole_cores_for(vm));
                    ("threadsPerCore", host.map(|h| smt_message(vm, h)).unwrap_or_default())
                } else if spread > 0 {
                    let group = vm.spread_group.as_ref().map(ToString::to_string).unwrap_or_default();
                    (
                        "spreadGroup",
                        format!(
                            "every failure domain with room already holds a member of spread group {group} \
                             ({spread} host(s) excluded by the spread, {selector} by hostSelector, {cordoned} unschedulable)"
                        ),
                    )
                } else if selector > 0 {
                    ("hostSelector", format!("no schedulable host matches its hostSelector ({cordoned} unschedulable)"))
                } else {
                    ("host", "no host is schedulable".to_string())
                };
                vec![Violation::constraint(object, resource, message)]
            }
        }
    }
}

/// Each VM offers what its node offers groups to its ServiceGroups, in name order: a group that
/// does not fit what the groups before it left is refused (and takes nothing). `host_threads`
/// gives the threads per core of each VM's host (by VM key; 1 when it has none): a guest with
/// SMT reserves whole cores, and its kubelet's `full-pcpus-only` admits only replicas of whole
/// cores (`SMTAlignmentError` otherwise).
pub fn fit_groups(
    groups: &[GroupModel],
    vms: &[&VmModel],
    host_threads: impl Fn(&ObjectKey) -> u64,
) -> (Vec<GroupPlan>, Vec<Violation>) {
    // Each VM with what its node offers groups and the threads per core its guest sees.
    let guests: HashMap<&ObjectKey, (&VmModel, Res, u64)> = vms
        .iter()
        .map(|vm| {
            let host_threads = host_threads(&vm.key);
            (&vm.key, (*vm, vm.offer(host_threads), vm.guest_threads(host_threads)))
        })
        .collect();
    let mut remaining: HashMap<&ObjectKey, Res> = guests.iter().map(|(key, (_, offer, _))| (*key, *offer)).collect();
    let mut sorted: Vec<&GroupModel> = groups.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut plans = Vec::new();
    let mut violations = Vec::new();
    for group in sorted {
        let object = Subject::group(&group.key);
        let available = remaining.get(&group.vm).copied();
        let guest = guests.get(&group.vm).copied();
        let fits = match (guest, available) {
            (None, _) | (_, None) => {
                violations.push(Violation::constraint(
                    object,
                    "vm",
                    format!("spec.vm names {}, which is not a CatalystVM in this layout", group.vm),
                ));
                false
            }
            (Some((vm, _, _)), Some(_)) if !vm.joins => {
                violations.push(Violation::constraint(
                    object,
                    "node",
                    format!(
                        "VM {} has no spec.node.joinSecretName: it never becomes a node, so no replica can run on it",
                        group.vm
                    ),
                ));
                false
            }
            (Some((_, _, per_core)), Some(_)) if !group.cpu.is_multiple_of(per_core) => {
                violations.push(Violation::constraint(
                    object,
                    "threadsPerCore",
                    format!(
                        "each replica asks {} cores, but VM {}'s guest has {per_core} threads per core (its host's \
                         SMT), and its kubelet's full-pcpus-only admits only whole cores (SMTAlignmentError)",
                        group.cpu, group.vm
                    ),
                ));
                false
            }
            (_, Some(left)) if left.covers(&group.demand) => {
                remaining.insert(&group.vm, left - group.demand);
                true
            }
            (Some((_, offered, _)), Some(left)) => {
                let earlier =
                    if left == offered { String::new() } else { ", less what earlier groups take".to_string() };
                let context = format!(
                    "{} replicas; VM {} offers groups {} cores and {}: its node's allocatable less headroom{earlier}",
                    group.replicas,
                    group.vm,
                    HumanCores(offered.millicores),
                    HumanBytes(offered.memory)
                );
                violations.extend(Violation::shortfalls(&object, group.demand, left, &context));
                false
            }
        };
        plans.push(GroupPlan {
            group: group.key.clone(),
            vm: group.vm.clone(),
            replicas: group.replicas,
            demand: group.demand,
            available,
            fits,
        });
    }
    (plans, violations)
}

#[cfg(test)]
mod tests;
