//! The planner's view of the API objects: plain numbers, resolved defaults, interned names.

pub use super::overhead::Overhead;
use crate::quantity::{format_bytes, format_millicores, parse_bytes, parse_millicores};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use kube::ResourceExt;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::ops::{Add, AddAssign, Sub};

/// CPU in millicores and memory in bytes: pods ask for whole cores, but a launcher pod's
/// console-log sidecar asks for 15m, and a host must keep that fraction too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Res {
    #[serde(rename = "cpu", serialize_with = "as_cpu_quantity")]
    pub millicores: u64,
    #[serde(serialize_with = "as_quantity")]
    pub memory: u64,
}

fn as_quantity<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_bytes(*bytes))
}

fn as_cpu_quantity<S: Serializer>(millicores: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_millicores(*millicores))
}

impl Res {
    pub const ZERO: Res = Res { millicores: 0, memory: 0 };

    /// Whole cores and bytes.
    pub fn cores(cores: u64, memory: u64) -> Self {
        Self { millicores: cores.saturating_mul(1000), memory }
    }

    pub fn millicores(millicores: u64, memory: u64) -> Self {
        Self { millicores, memory }
    }

    /// Both resources at least those of `other`.
    pub fn covers(&self, other: &Res) -> bool {
        self.millicores >= other.millicores && self.memory >= other.memory
    }

    pub fn saturating_sub(&self, other: &Res) -> Res {
        Res {
            millicores: self.millicores.saturating_sub(other.millicores),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    /// The smaller of each resource.
    pub fn min_each(&self, other: &Res) -> Res {
        Res { millicores: self.millicores.min(other.millicores), memory: self.memory.min(other.memory) }
    }
}

impl Add for Res {
    type Output = Res;
    /// Saturating: totals of hosts or VMs of absurd sizes (a user may write `9Ei`) stay
    /// totals, never an overflow.
    fn add(self, other: Res) -> Res {
        Res {
            millicores: self.millicores.saturating_add(other.millicores),
            memory: self.memory.saturating_add(other.memory),
        }
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

/// The figures as the API writes them in statuses (CPU and memory as quantities).
impl From<Res> for catalyst_api::Resources {
    fn from(res: Res) -> Self {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        Self { cpu: Quantity(format_millicores(res.millicores)), memory: Quantity(format_bytes(res.memory)) }
    }
}

impl From<&catalyst_api::Resources> for Res {
    fn from(resources: &catalyst_api::Resources) -> Self {
        Res::millicores(parse_millicores(&resources.cpu.0).unwrap_or(0), bytes(&resources.memory.0))
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
        let capacity = Res::cores(spec.capacity.cpu.into(), bytes(&spec.capacity.memory.0));
        let reserved = Res::cores(spec.reserved.cpu.into(), bytes(&spec.reserved.memory.0));
        let cell_count = spec.numa.len() as u64;
        let cells = spec
            .numa
            .iter()
            .map(|cell| {
                let cores = u64::from(spec.reserved.cpu).div_ceil(cell_count);
                let share = Res::cores(cores, reserved.memory.div_ceil(cell_count));
                Res::cores(cell.cpu.into(), bytes(&cell.memory.0)) - share
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
        let cores = overhead.pinned_cores(vcpus, spec.isolate_emulator_thread);
        let container_disk = spec.boot_disk.container_disk.is_some();
        Self {
            key: crate::key::key(&namespace, &vm.name_any()),
            demand: Res::cores(cores, memory) + overhead.of_vm(memory, vcpus, container_disk),
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
    Res::cores(u64::from(spec.cpu), memory) - Res::cores(spec.node.reserved_cpu.into(), kept)
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
            demand: Res::cores(replicas * u64::from(spec.cpu), replicas.saturating_mul(bytes(&spec.memory.0))),
        }
    }
}

/// Quantities were validated before planning; an invalid one counts as zero rather than panicking.
fn bytes(quantity: &str) -> u64 {
    parse_bytes(quantity).unwrap_or(0)
}
