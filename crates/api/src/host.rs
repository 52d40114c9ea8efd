//! `CatalystHost`: a physical server that runs KubeVirt, and what it can give to VMs.

use super::rules;
use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A physical server (a Kubernetes node running KubeVirt): its cores, memory, storage, NUMA
/// layout and the share kept back for the hypervisor and host OS.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "catalyst.io",
    version = "v1alpha1",
    kind = "CatalystHost",
    shortname = "chost",
    category = "catalyst",
    derive = "PartialEq",
    doc = "A physical server running KubeVirt, and the cores and memory it gives to Catalyst VMs.",
    selectable = ".spec.nodeName",
    status = "CatalystHostStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"CPU","type":"string","description":"allocated/allocatable cores","jsonPath":".status.summary.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","description":"allocated/allocatable memory","jsonPath":".status.summary.memory"}"#,
    printcolumn = r#"{"name":"VMs","type":"integer","jsonPath":".status.summary.vmCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = rules::HOST_RESERVED_CPU_BELOW_CAPACITY.to_kube(),
    validation = rules::HOST_RESERVED_MEMORY_BELOW_CAPACITY.to_kube(),
    validation = rules::HOST_NUMA_CPU_WITHIN_CAPACITY.to_kube(),
    validation = rules::HOST_HUGEPAGES_WITHIN_MEMORY.to_kube(),
    validation = rules::HOST_NUMA_RESERVED_CPU.to_kube(),
    validation = rules::HOST_NUMA_HUGEPAGES.to_kube(),
    validation = rules::HOST_NUMA_WHOLE_CORES.to_kube(),
    validation = rules::HOST_TOPOLOGY_MANAGER_CELLS.to_kube()
)]
#[serde(rename_all = "camelCase")]
pub struct CatalystHostSpec {
    /// Name of the Kubernetes node this server is.
    #[schemars(length(min = 1, max = 253))]
    pub node_name: String,
    /// What the server has in all.
    pub capacity: HostCapacity,
    /// What is kept for the hypervisor and host OS, never given to VMs.
    #[serde(default)]
    pub reserved: HostReserved,
    /// NUMA cells, in the order of their ids. When set, the planner places each VM's launcher
    /// on them as the host's kubelet would (see `kubelet`), in every order the launchers can
    /// start in, and a VM with NUMA passthrough fits only where its guest memory lands inside the
    /// hugepage pools of the cells its cores take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub numa: Vec<NumaCell>,
    /// How the host's kubelet places Guaranteed pods (the VMs' launchers) on its NUMA cells, as
    /// its KubeletConfiguration says. Defaults are the kubelet's own.
    #[serde(default, skip_serializing_if = "HostKubelet::is_default")]
    pub kubelet: HostKubelet,
    /// Hugepages the host's kernel pre-allocates at boot (`hugepagesz=1G hugepages=N`). They
    /// leave the memory ordinary pods and VMs get, and hugepage VMs take their guest memory
    /// from them; the kernel spreads boot-time pages evenly over the NUMA cells.
    #[serde(default, skip_serializing_if = "HostHugepages::is_empty")]
    pub hugepages: HostHugepages,
    /// Rack or zone. Spread groups keep their members in distinct failure domains. Defaults to the host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub failure_domain: Option<String>,
    /// false keeps the VMs already here but places no new ones (a cordon).
    #[serde(default = "default_true")]
    pub schedulable: bool,
    /// true drains the host: it takes no new VMs, and the operator moves each of its VMs to the
    /// host the planner finds for it (as each VM's `moveStrategy` says), `maxParallelMoves` at a
    /// time, never two of one spread group at once. Set by `kubectl catalyst drain`. false again
    /// makes it schedulable; VMs do not move back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// How many of its VMs a drain moves at once.
    #[serde(default = "default_parallel_moves", skip_serializing_if = "is_one")]
    #[schemars(range(min = 1, max = 64))]
    pub max_parallel_moves: u32,
    /// Hardware threads per physical core: 2 on a host with SMT (hyperthreading). `capacity.cpu`
    /// and the NUMA cells count threads, as the kubelet does. Catalyst assumes the host
    /// kubelet's static CPU manager runs with `full-pcpus-only`, as dedicated cores need on such
    /// a host, so it pins each VM's launcher to whole physical cores and refuses one whose CPU
    /// count is not a multiple of this (`SMTAlignmentError`).
    #[serde(default = "default_threads_per_core")]
    #[schemars(range(min = 1, max = 8))]
    pub threads_per_core: u32,
}

fn default_threads_per_core() -> u32 {
    1
}

impl CatalystHostSpec {
    /// Threads per core as a count to divide by: never 0, whatever an unvalidated object says.
    pub fn threads(&self) -> u64 {
        self.threads_per_core.max(1).into()
    }
}

fn default_true() -> bool {
    true
}

fn default_parallel_moves() -> u32 {
    1
}

fn is_one(count: &u32) -> bool {
    *count == 1
}

/// Everything the server has.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostCapacity {
    /// Whole cores (hardware threads the hypervisor can pin).
    #[schemars(range(min = 1))]
    pub cpu: u32,
    /// Memory, such as 2Ti.
    #[schemars(schema_with = "super::quantity_schema")]
    pub memory: Quantity,
    /// Local storage, such as 40T.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::optional_quantity_schema")]
    pub storage: Option<Quantity>,
}

/// What the hypervisor and host OS keep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostReserved {
    /// Whole cores kept for the host.
    #[serde(default)]
    pub cpu: u32,
    /// Memory kept for the host.
    #[schemars(schema_with = "super::non_negative_quantity_schema")]
    #[serde(default = "zero_quantity")]
    pub memory: Quantity,
}

impl Default for HostReserved {
    fn default() -> Self {
        Self { cpu: 0, memory: zero_quantity() }
    }
}

fn zero_quantity() -> Quantity {
    Quantity("0".into())
}

/// The host's hugepage pools: how many pages of each size.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct HostHugepages {
    /// 1Gi pages.
    #[serde(default, rename = "pages1Gi", skip_serializing_if = "is_zero")]
    #[schemars(range(max = 1048576))]
    pub pages_1gi: u32,
    /// 2Mi pages.
    #[serde(default, rename = "pages2Mi", skip_serializing_if = "is_zero")]
    #[schemars(range(max = 536870912))]
    pub pages_2mi: u32,
}

impl HostHugepages {
    pub fn is_empty(&self) -> bool {
        self.pages_1gi == 0 && self.pages_2mi == 0
    }

    /// The pools' bytes in all.
    pub fn bytes(&self) -> u64 {
        (u64::from(self.pages_1gi) << 30) + (u64::from(self.pages_2mi) << 21)
    }
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// One NUMA cell: the cores and memory local to one socket or die.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NumaCell {
    /// CPUs (hardware threads) in this cell.
    #[schemars(range(min = 1))]
    pub cpu: u32,
    /// Memory local to this cell.
    #[schemars(schema_with = "super::quantity_schema")]
    pub memory: Quantity,
    /// The CPUs of this cell the host's kubelet reserves (its reservedSystemCPUs there). Unset on
    /// every cell: the kubelet's own choice for a count (`reserved.cpu`), the lowest cells' first
    /// cores. Set, on every cell, adding up to `reserved.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_cpu: Option<u32>,
    /// This cell's hugepage pools. Unset on every cell: how the kernel splits a boot-time
    /// `hugepages=N` (round robin from the lowest cell, so the first cells hold one page more
    /// when the count does not divide). Set, on every cell, adding up to `spec.hugepages` (as a
    /// per-node `hugepages=0:N,1:M` boot parameter sets them, Linux 5.16 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<HostHugepages>,
}

/// The host kubelet's NUMA settings (`topologyManagerPolicy`, `topologyManagerScope`,
/// `memoryManagerPolicy` of its KubeletConfiguration; kubernetes
/// `pkg/kubelet/apis/config/v1beta1/defaults.go`: none, container, None).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostKubelet {
    #[serde(default)]
    pub topology_manager_policy: TopologyManagerPolicy,
    #[serde(default)]
    pub topology_manager_scope: TopologyManagerScope,
    #[serde(default)]
    pub memory_manager_policy: MemoryManagerPolicy,
}

impl HostKubelet {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How the kubelet's topology manager admits a pod whose resources span NUMA nodes
/// (`pkg/kubelet/cm/topologymanager/`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TopologyManagerPolicy {
    /// No alignment: the CPU manager packs CPUs as it would alone.
    #[default]
    #[serde(rename = "none")]
    None,
    /// Aligns where it can, admits always.
    #[serde(rename = "best-effort")]
    BestEffort,
    /// Admits only on the fewest NUMA nodes that could hold the pod.
    #[serde(rename = "restricted")]
    Restricted,
    /// Admits only on one NUMA node.
    #[serde(rename = "single-numa-node")]
    SingleNumaNode,
}

impl TopologyManagerPolicy {
    /// As the KubeletConfiguration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::BestEffort => "best-effort",
            Self::Restricted => "restricted",
            Self::SingleNumaNode => "single-numa-node",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TopologyManagerScope {
    #[default]
    #[serde(rename = "container")]
    Container,
    #[serde(rename = "pod")]
    Pod,
}

/// The kubelet's memory manager: `Static` binds a Guaranteed pod's memory and hugepages to NUMA
/// nodes and needs `reservedMemory`; `None` binds nothing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum MemoryManagerPolicy {
    #[default]
    None,
    Static,
}

/// What the host gives and holds, as computed by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalystHostStatus {
    /// capacity - reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable: Option<super::Resources>,
    /// Taken by the VMs placed here (their cores, emulator threads and launcher overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<super::Resources>,
    /// allocatable - allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<super::Resources>,
    /// The VMs placed here, as namespace/name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<String>,
    /// Short text for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<HostSummary>,
    /// Its cores as its kubelet reports them (its node's CatalystNodeReport), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<HostCores>,
    /// Its VMs leaving, while it is drained (`spec.maintenance`) or fenced (its node carries
    /// `node.kubernetes.io/out-of-service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evacuation: Option<Evacuation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// How a host's evacuation stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evacuation {
    /// `Drain` or `Fenced`.
    pub reason: String,
    /// `Progressing` (VMs are moving, or about to), `Blocked` (a VM that must leave cannot) or
    /// `Complete` (no VM left).
    pub state: String,
    /// VMs still on the host, moving ones included.
    pub remaining: u32,
    /// The moves under way: VM and the host it goes to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moving: Vec<PlannedMove>,
    /// The moves the plan has for the VMs still to leave, in the order they will go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<PlannedMove>,
    /// The VMs that cannot leave, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<BlockedMove>,
}

/// A VM (namespace/name) and the host it goes to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PlannedMove {
    pub vm: String,
    pub to: String,
    /// `LiveMigrate` or `Restart`.
    pub strategy: String,
}

/// A VM (namespace/name) that cannot leave, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct BlockedMove {
    pub vm: String,
    pub reason: String,
}

/// A host's cores, as Linux CPU lists: kept back by the kubelet, held by each VM, held by other
/// pods, free.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct HostCores {
    /// CPUs the kubelet keeps from exclusive use (its reserved CPUs: the host OS, the kubelet).
    #[serde(default)]
    pub reserved: String,
    /// The CPUs each VM's launcher holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmCores>,
    /// The CPUs pods that are no VM's launcher hold exclusively (another Guaranteed workload on
    /// the host, or a launcher of a VM outside this operator's ledger).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<PodCores>,
    /// CPUs the kubelet may give exclusively that no container holds.
    #[serde(default)]
    pub free: String,
}

/// The host CPUs one VM's launcher holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct VmCores {
    /// namespace/name.
    pub vm: String,
    pub cpus: String,
}

/// The host CPUs a pod that is no VM's launcher holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PodCores {
    /// namespace/name.
    pub pod: String,
    pub cpus: String,
}

/// Preformatted figures for the printer columns.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostSummary {
    /// "allocated/allocatable" cores, such as 120/248.
    pub cpu: String,
    /// "allocated/allocatable" memory, such as 1024Gi/1984Gi.
    pub memory: String,
    pub vm_count: u32,
}
