//! The planner's view of the API objects: plain numbers, resolved defaults, interned names.

use crate::quantity::{format_bytes, parse_bytes};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use kube::ResourceExt;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::ops::{Add, AddAssign, Sub};

/// Whole cores and bytes of memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Res {
    pub cpu: u64,
    #[serde(serialize_with = "as_quantity")]
    pub memory: u64,
}

fn as_quantity<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_bytes(*bytes))
}

impl Res {
    pub const ZERO: Res = Res { cpu: 0, memory: 0 };

    pub fn new(cpu: u64, memory: u64) -> Self {
        Self { cpu, memory }
    }

    /// Both resources at least those of `other`.
    pub fn covers(&self, other: &Res) -> bool {
        self.cpu >= other.cpu && self.memory >= other.memory
    }

    pub fn saturating_sub(&self, other: &Res) -> Res {
        Res { cpu: self.cpu.saturating_sub(other.cpu), memory: self.memory.saturating_sub(other.memory) }
    }

    /// The smaller of each resource.
    pub fn min_each(&self, other: &Res) -> Res {
        Res { cpu: self.cpu.min(other.cpu), memory: self.memory.min(other.memory) }
    }
}

impl Add for Res {
    type Output = Res;
    /// Saturating: totals of hosts or VMs of absurd sizes (a user may write `9Ei`) stay
    /// totals, never an overflow.
    fn add(self, other: Res) -> Res {
        Res { cpu: self.cpu.saturating_add(other.cpu), memory: self.memory.saturating_add(other.memory) }
    }
}

impl AddAssign for Res {
    fn add_assign(&mut self, other: Res) {
        *self = *self + other;
    }
}

impl Sub for Res {
    type Output = Res;
    /// Saturating: a shortfall is never negative.
    fn sub(self, other: Res) -> Res {
        self.saturating_sub(&other)
    }
}

/// The figures as the API writes them in statuses (whole cores, memory as a quantity).
impl From<Res> for catalyst_api::Resources {
    fn from(res: Res) -> Self {
        Self {
            cpu: u32::try_from(res.cpu).unwrap_or(u32::MAX),
            memory: k8s_openapi::apimachinery::pkg::api::resource::Quantity(format_bytes(res.memory)),
        }
    }
}

impl From<&catalyst_api::Resources> for Res {
    fn from(resources: &catalyst_api::Resources) -> Self {
        Res::new(resources.cpu.into(), bytes(&resources.memory.0))
    }
}

/// KubeVirt v1.9.0's launcher processes (`pkg/hypervisor/kvm/hypervisorbackend.go`,
/// `GetMemoryOverhead`): virt-launcher-monitor 25Mi + virt-launcher 100Mi + virtlogd 25Mi +
/// virtqemud 40Mi + qemu 30Mi, plus the one IO thread it always counts, 8Mi.
const LAUNCHER_PROCESSES: u64 = (25 + 100 + 25 + 40 + 30 + 8) << 20;
/// The same function's term for a VM with dedicated CPUs, which every Catalyst VM is.
const DEDICATED_CPUS: u64 = 100 << 20;
/// The `guest-console-log` sidecar of the launcher pod, present unless the KubeVirt CR sets
/// `disableSerialConsoleLog`: 60M of memory, requests equal to limits for a dedicated-CPU VM
/// (`pkg/virt-controller/services/serialconsolelog.go`). Its 15m of CPU is not modelled yet.
const CONSOLE_LOG: u64 = 60_000_000;

/// What one VM costs its host beyond the guest's own memory: the virt-launcher pod's
/// processes, its page tables and its console-log sidecar, as KubeVirt v1.9.0 counts them
/// (`GetMemoryOverhead` for KVM): 228Mi for the processes and an IO thread, 100Mi for
/// dedicated CPUs, 8Mi per vCPU, guest memory / 512 for page tables, and the sidecar's 60M. No
/// video RAM: Catalyst renders VMs without a graphics device. A 96-vCPU, 512Gi VM: 2,120Mi from
/// `GetMemoryOverhead`, as KubeVirt computes it, and 2,177.2Mi with the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overhead {
    /// The processes, the IO thread and the dedicated-CPU term.
    #[serde(serialize_with = "as_quantity")]
    pub fixed: u64,
    #[serde(serialize_with = "as_quantity")]
    pub per_vcpu: u64,
    pub pagetable_divisor: u64,
    /// The console-log sidecar's memory (0 when KubeVirt runs without it).
    #[serde(serialize_with = "as_quantity")]
    pub console_log: u64,
}

impl Default for Overhead {
    fn default() -> Self {
        Self {
            fixed: LAUNCHER_PROCESSES + DEDICATED_CPUS,
            per_vcpu: 8 << 20,
            pagetable_divisor: 512,
            console_log: CONSOLE_LOG,
        }
    }
}

impl Overhead {
    /// Memory the launcher pod needs on top of the guest's `memory` for `vcpus` vCPUs.
    pub fn memory(&self, memory: u64, vcpus: u64) -> u64 {
        self.launcher(memory, vcpus) + self.console_log
    }

    /// What KubeVirt's `GetMemoryOverhead` gives (without the sidecar).
    pub fn launcher(&self, memory: u64, vcpus: u64) -> u64 {
        self.fixed + self.per_vcpu * vcpus + memory.div_ceil(self.pagetable_divisor.max(1))
    }
}

/// A host as the planner sees it.
#[derive(Debug, Clone)]
pub struct HostModel {
    pub name: String,
    pub node_name: String,
    pub failure_domain: String,
    pub schedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// capacity - reserved.
    pub allocatable: Res,
    /// Allocatable share of each NUMA cell (empty when the host declares none).
    pub cells: Vec<Res>,
}

impl HostModel {
    /// Reads a validated host. NUMA cells give up the host's reserve in equal shares
    /// (rounded up), since the hypervisor's own threads run on every cell.
    pub fn from_host(host: &CatalystHost) -> Self {
        let spec = &host.spec;
        let capacity = Res::new(spec.capacity.cpu.into(), bytes(&spec.capacity.memory.0));
        let reserved = Res::new(spec.reserved.cpu.into(), bytes(&spec.reserved.memory.0));
        let cell_count = spec.numa.len() as u64;
        let cells = spec
            .numa
            .iter()
            .map(|cell| {
                let share = Res::new(reserved.cpu.div_ceil(cell_count), reserved.memory.div_ceil(cell_count));
                Res::new(cell.cpu.into(), bytes(&cell.memory.0)) - share
            })
            .collect();
        Self {
            name: host.name_any(),
            node_name: spec.node_name.clone(),
            failure_domain: spec.failure_domain.clone().unwrap_or_else(|| host.name_any()),
            schedulable: spec.schedulable,
            labels: host.labels().clone(),
            allocatable: capacity - reserved,
            cells,
        }
    }
}

/// A VM as the planner sees it.
#[derive(Debug, Clone)]
pub struct VmModel {
    /// namespace/name
    pub key: String,
    /// What the VM takes from its host: cores (plus the emulator thread's) and memory plus overhead.
    pub demand: Res,
    /// The host the user pinned it to.
    pub pinned: Option<String>,
    /// The host its status names: it runs there and is never moved.
    pub placed: Option<String>,
    /// namespace/spreadGroup
    pub spread_group: Option<String>,
    pub host_selector: BTreeMap<String, String>,
    /// Needs its cores and memory within NUMA cells (numaPassthrough or hugepages).
    pub numa_aware: bool,
    /// What the VM offers ServiceGroups: cpu - node.reservedCpu, memory - node.reservedMemory.
    pub for_groups: Res,
    /// Whether it joins the cluster as a node (`spec.node.joinSecretName` is set): a VM that
    /// does not never takes a replica, whatever room it has.
    pub joins: bool,
}

impl VmModel {
    pub fn from_vm(vm: &CatalystVM, overhead: &Overhead) -> Self {
        let spec = &vm.spec;
        let namespace = vm.namespace().unwrap_or_default();
        let memory = bytes(&spec.memory.0);
        let vcpus = u64::from(spec.cpu);
        let cpu = vcpus + u64::from(spec.isolate_emulator_thread);
        Self {
            key: crate::key::key(&namespace, &vm.name_any()),
            demand: Res::new(cpu, memory + overhead.memory(memory, vcpus)),
            pinned: spec.host.clone(),
            placed: vm.status.as_ref().and_then(|s| s.host.clone()),
            spread_group: spec.placement.spread_group.as_ref().map(|g| format!("{namespace}/{g}")),
            host_selector: spec.placement.host_selector.clone(),
            numa_aware: spec.numa_passthrough || spec.hugepages.is_some(),
            for_groups: node_allocatable(spec),
            joins: spec.node.join_secret_name.is_some(),
        }
    }
}

/// Memory the guest kernel keeps out of the kubelet's sight: its page structures, 64 bytes
/// for every 4 KiB page, are taken at boot and never counted in MemTotal.
pub const GUEST_MEMMAP_DIVISOR: u64 = 64;

/// The kubelet's hard eviction threshold for memory, as Catalyst renders it into the VM's
/// node: the kubelet's own default (see [`EVICTION_HARD`]).
pub const EVICTION_HARD_MEMORY: u64 = 100 << 20;

/// The kubelet's default hard-eviction thresholds on Linux (kubernetes
/// `pkg/kubelet/eviction/defaults_linux.go`, `DefaultEvictionHard`). The kubelet applies them
/// only when `evictionHard` is unset (unless `mergeDefaultEvictionSettings` is on): a config
/// that sets one signal turns the others off, disk-pressure eviction included. So Catalyst
/// renders all of them.
pub const EVICTION_HARD: [(&str, &str); 4] = [
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
    ("imagefs.available", "15%"),
];

/// What the VM's node offers pods (its allocatable): cores less `node.reservedCpu`; memory less
/// the guest kernel's page structures, `node.reservedMemory` and the eviction threshold.
pub fn node_allocatable(spec: &catalyst_api::CatalystVMSpec) -> Res {
    let memory = bytes(&spec.memory.0);
    let kept = memory.div_ceil(GUEST_MEMMAP_DIVISOR) + bytes(&spec.node.reserved_memory.0) + EVICTION_HARD_MEMORY;
    Res::new(u64::from(spec.cpu), memory) - Res::new(spec.node.reserved_cpu.into(), kept)
}

/// A ServiceGroup as the planner sees it.
#[derive(Debug, Clone)]
pub struct GroupModel {
    /// namespace/name
    pub key: String,
    /// namespace/vm
    pub vm: String,
    pub replicas: u64,
    /// replicas x per-replica
    pub demand: Res,
}

impl GroupModel {
    pub fn from_group(group: &ServiceGroup) -> Self {
        let spec = &group.spec;
        let namespace = group.namespace().unwrap_or_default();
        let replicas = u64::try_from(spec.replicas).unwrap_or(0);
        Self {
            key: crate::key::key(&namespace, &group.name_any()),
            vm: format!("{namespace}/{}", spec.vm),
            replicas,
            demand: Res::new(replicas * u64::from(spec.cpu), replicas.saturating_mul(bytes(&spec.memory.0))),
        }
    }
}

/// Quantities were validated before planning; an invalid one counts as zero rather than panicking.
fn bytes(quantity: &str) -> u64 {
    parse_bytes(quantity).unwrap_or(0)
}
