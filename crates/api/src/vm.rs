//! `CatalystVM`: a VM with dedicated cores and memory that joins the cluster as its own node.

use super::rules;
use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A VM with dedicated cores and memory, placed on a CatalystHost and rendered into a KubeVirt
/// VirtualMachine with dedicated CPU placement.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "catalyst.io",
    version = "v1alpha1",
    kind = "CatalystVM",
    namespaced,
    shortname = "cvm",
    category = "catalyst",
    derive = "PartialEq",
    doc = "A VM with dedicated cores and memory, rendered into a KubeVirt VirtualMachine that joins the cluster as its own node.",
    status = "CatalystVMStatus",
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".status.host"}"#,
    printcolumn = r#"{"name":"CPU","type":"integer","jsonPath":".spec.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".spec.memory"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.nodeName"}"#,
    printcolumn = r#"{"name":"Pinned","type":"string","jsonPath":".status.conditions[?(@.type==\"Pinned\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = rules::VM_PLACED_HOST_IS_FIXED.to_kube()
)]
#[x_kube(
    validation = rules::VM_MEMORY_WHOLE_PAGES.to_kube(),
    validation = rules::VM_NUMA_PASSTHROUGH_NEEDS_HUGEPAGES.to_kube(),
    validation = rules::VM_NODE_RESERVED_CPU_BELOW_CPU.to_kube(),
    validation = rules::VM_NODE_RESERVED_MEMORY_BELOW_MEMORY.to_kube()
)]
#[serde(rename_all = "camelCase")]
pub struct CatalystVMSpec {
    /// Dedicated whole cores.
    #[schemars(range(min = 1))]
    pub cpu: u32,
    /// Dedicated memory, such as 512Gi.
    #[schemars(schema_with = "super::quantity_schema")]
    pub memory: Quantity,
    /// Back the guest's memory with hugepages of this size: 2Mi or 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<HugepageSize>,
    /// Pin the VM to this CatalystHost. Without it the operator chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// The disk the VM boots from.
    pub boot_disk: BootDisk,
    /// Give QEMU's emulator thread a core of its own, so it never steals from the guest's
    /// dedicated cores. Costs one more core on the host.
    #[serde(default = "default_true")]
    pub isolate_emulator_thread: bool,
    /// Expose the host's NUMA layout to the guest (KubeVirt's guestMappingPassthrough). Needs
    /// `hugepages`, and KubeVirt's `NUMA` and `CPUManager` feature gates.
    #[serde(default)]
    pub numa_passthrough: bool,
    #[serde(default)]
    pub run_strategy: RunStrategy,
    /// The network the VM's node is reached on.
    #[serde(default, skip_serializing_if = "VmNetwork::is_pod_network")]
    pub network: VmNetwork,
    /// How the VM leaves its host when the host is drained (`spec.maintenance`) or fenced:
    /// `LiveMigrate` (KubeVirt live migration, without a restart; only for a VM that can
    /// migrate), `Restart` (stopped, and started on its new host), or `None` (never moved: a
    /// drain waits on it). Unset: `LiveMigrate` where the VM can migrate, `Restart` otherwise. A
    /// fenced host's VMs always restart elsewhere (they are not running), unless `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_strategy: Option<MoveStrategy>,
    /// How the VM joins the cluster as a node.
    #[serde(default)]
    pub node: NodeSettings,
}

fn default_true() -> bool {
    true
}

/// Where the VM may go when the operator chooses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// VMs sharing a spread group land on different hosts (different failure domains when hosts declare them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub spread_group: Option<String>,
    /// Only hosts whose CatalystHost labels match all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_selector: BTreeMap<String, String>,
}

impl Placement {
    pub fn is_empty(&self) -> bool {
        self.spread_group.is_none() && self.host_selector.is_empty()
    }
}

/// The VM's one network interface, bridged so that the guest has an address of its own that
/// other nodes route to: its kubelet registers it as the node's InternalIP. (KubeVirt's
/// `masquerade` binding would give every guest 10.0.2.2, `DefaultVMCIDR` in
/// `pkg/virt-launcher/virtwrap/api/defaults.go`, so every VM-node would claim the same address.)
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VmNetwork {
    /// A Multus NetworkAttachmentDefinition, `namespace/name` or `name` in the VM's namespace,
    /// that replaces the pod network as the VM's default network (a bridge to the hosts' LAN,
    /// say). The guest takes its address from that network's DHCP. Without it the VM is
    /// bridged to the pod network and KubeVirt's DHCP gives the guest its pod's IPv4 address
    /// (the KubeVirt CR's `permitBridgeInterfaceOnPodNetwork`, true by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    #[x_kube(validation = rules::VM_MULTUS_NETWORK_NAME.to_kube())]
    pub multus_network_name: Option<String>,
}

impl VmNetwork {
    pub fn is_pod_network(&self) -> bool {
        self.multus_network_name.is_none()
    }
}

/// The disk the VM boots from: one of a container-disk image, a new DataVolume of a
/// StorageClass (the Ceph RBD case), or an existing PersistentVolumeClaim.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::BOOT_DISK_ONE_SOURCE.to_kube())]
#[serde(rename_all = "camelCase")]
pub struct BootDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_disk: Option<ContainerDiskSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<DataVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PvcSource>,
}

/// An ephemeral boot disk from a container image (KubeVirt containerDisk).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ContainerDiskSource {
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
}

/// A persistent boot disk imported into a new volume of a StorageClass.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeSource {
    /// StorageClass of the new volume, such as a Ceph RBD class.
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: String,
    /// Size of the volume, such as 100Gi.
    #[schemars(schema_with = "super::quantity_schema")]
    pub size: Quantity,
    /// Image to import: an http(s) URL, or docker://registry/image for a container registry.
    #[schemars(length(min = 1, max = 2048))]
    pub image_url: String,
    /// `ReadWriteMany` lets KubeVirt live-migrate the VM (a Ceph RBD class gives it in block
    /// mode); unset, the StorageClass's StorageProfile decides, and Catalyst moves the VM by a
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
}

/// A volume's access mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadWriteMany,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }
    }
}

/// An existing PersistentVolumeClaim in the VM's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcSource {
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

/// The hugepage sizes x86-64 offers and KubeVirt backs a guest's memory with
/// (`spec.domain.memory.hugepages.pageSize`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum HugepageSize {
    #[serde(rename = "2Mi")]
    TwoMebibytes,
    #[serde(rename = "1Gi")]
    OneGibibyte,
}

impl HugepageSize {
    pub fn bytes(self) -> u64 {
        match self {
            HugepageSize::TwoMebibytes => 2 << 20,
            HugepageSize::OneGibibyte => 1 << 30,
        }
    }

    /// As KubeVirt and the CRD write it.
    pub fn as_str(self) -> &'static str {
        match self {
            HugepageSize::TwoMebibytes => "2Mi",
            HugepageSize::OneGibibyte => "1Gi",
        }
    }
}

/// How a VM leaves a host that is drained or fenced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MoveStrategy {
    /// KubeVirt live migration to the new host: the guest keeps running.
    LiveMigrate,
    /// Stopped on the old host and started on the new one.
    Restart,
    /// Never moved by the operator.
    None,
}

/// A move under way: the host the VM is going to, how, and why. Its old host keeps its place
/// in the old ledger until the VM runs on the new one, which holds a place for it from the
/// start: a move that fails half-way frees nothing twice and loses nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmMove {
    /// The CatalystHost it is going to.
    pub to: String,
    /// `LiveMigrate` or `Restart`.
    pub strategy: MoveStrategy,
    /// `Drain` (its host is in maintenance) or `Fenced` (its host's node is out of service).
    pub reason: String,
    /// When the move began.
    pub started: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// KubeVirt run strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RunStrategy {
    #[default]
    Always,
    RerunOnFailure,
    Manual,
    Halted,
    Once,
}

/// Settings of the Kubernetes node the VM becomes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::VM_NODE_JOIN_NEEDS_SOFTWARE.to_kube())]
#[serde(rename_all = "camelCase")]
pub struct NodeSettings {
    /// Whole cores kept for the guest OS and the kubelet (the kubelet's reservedSystemCPUs);
    /// the rest go to ServiceGroups. The static CPU manager needs at least one.
    #[serde(default = "default_reserved_cpu")]
    #[schemars(range(min = 1))]
    pub reserved_cpu: u32,
    /// Memory kept for the guest OS and the kubelet.
    #[serde(default = "default_reserved_memory")]
    #[schemars(schema_with = "super::non_negative_quantity_schema")]
    pub reserved_memory: Quantity,
    /// What the node keeps free of ServiceGroups for the DaemonSets that run on every node
    /// and tolerate its taint: the CNI agent, CSI node plugins (a PVC-backed group needs
    /// one), Catalyst's agent. The scheduler counts their requests against the same
    /// allocatable as the replicas', so a node filled to its last core leaves a replica
    /// Pending.
    #[serde(default)]
    pub headroom: NodeHeadroom,
    /// Extra labels on the node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Secret in the VM's namespace with the kubeadm join credentials: keys
    /// `apiServerEndpoint`, `token` and `caCertHash` (only the first and last when the operator
    /// mints each VM its own token). Without it the VM boots but does not join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub join_secret_name: Option<String>,
    /// What makes the VM a node: its Kubernetes release and where its kubelet, kubeadm and
    /// container runtime come from. Required with `joinSecretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<NodeSoftware>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            reserved_cpu: default_reserved_cpu(),
            reserved_memory: default_reserved_memory(),
            headroom: NodeHeadroom::default(),
            labels: BTreeMap::new(),
            join_secret_name: None,
            software: None,
        }
    }
}

/// The node's software: a Kubernetes release, and whether cloud-init installs it or the boot
/// image already holds it. Either way the choice is written down, so a VM never boots an image
/// that cannot join and retries for ever.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::VM_SOFTWARE_REPOSITORY_ONLY_TO_INSTALL.to_kube())]
#[serde(rename_all = "camelCase")]
pub struct NodeSoftware {
    /// The release of the node's kubelet and kubeadm, `v1.34` or `v1.34.2`: v1.31 or later,
    /// as the rendered JoinConfiguration is `kubeadm.k8s.io/v1beta4`. The operator refuses a
    /// release newer than the API server's or more than one minor release older (kubeadm's
    /// skew policy).
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = rules::VM_KUBERNETES_VERSION.to_kube())]
    pub kubernetes_version: String,
    /// `Install`: before joining, cloud-init installs containerd, and this release's kubelet
    /// and kubeadm, on a stock Debian or Ubuntu cloud image. `Prepared`: the boot image holds
    /// them already (see the guide for what it must contain).
    #[serde(default)]
    pub source: SoftwareSource,
    /// Where `Install` takes the Kubernetes packages from instead of pkgs.k8s.io: a mirror, as
    /// air-gapped clusters need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<PackageRepository>,
}

/// Where a VM-node's software comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SoftwareSource {
    /// Installed by cloud-init on a stock image.
    #[default]
    Install,
    /// Already in the boot image.
    Prepared,
}

/// An apt repository with the content of pkgs.k8s.io's repository of one minor release
/// (`https://pkgs.k8s.io/core:/stable:/v1.34/deb/`): a flat repository (`deb <url> /`) whose
/// signing key is `<url>/Release.key`. For Kubernetes v1.36 and later on a distribution that
/// ships containerd 1.x, it may carry a `containerd` package of 2.0 or later too: apt takes the
/// newest version any source offers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PackageRepository {
    /// An http or https URL, such as `https://mirror.example.com/kubernetes/v1.34/deb/`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = rules::VM_PACKAGE_REPOSITORY_URL.to_kube())]
    pub url: String,
}

/// Requests of node-level DaemonSets, kept out of what ServiceGroups may take.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeHeadroom {
    /// CPU, such as 500m. Replicas take whole cores, so any fraction here costs a core.
    #[serde(default = "default_headroom_cpu")]
    #[schemars(schema_with = "super::non_negative_quantity_schema")]
    pub cpu: Quantity,
    /// Memory, such as 512Mi.
    #[serde(default = "default_headroom_memory")]
    #[schemars(schema_with = "super::non_negative_quantity_schema")]
    pub memory: Quantity,
}

impl Default for NodeHeadroom {
    fn default() -> Self {
        Self { cpu: default_headroom_cpu(), memory: default_headroom_memory() }
    }
}

/// A CNI agent (Calico's calico-node asks 250m), a CSI node plugin and Catalyst's agent (10m,
/// 16Mi) with room to spare.
fn default_headroom_cpu() -> Quantity {
    Quantity("500m".into())
}

fn default_headroom_memory() -> Quantity {
    Quantity("512Mi".into())
}

fn default_reserved_cpu() -> u32 {
    1
}

fn default_reserved_memory() -> Quantity {
    Quantity("4Gi".into())
}

/// Lifecycle of a CatalystVM as the operator reports it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VmPhase {
    /// Waiting for a host.
    Pending,
    /// A host is chosen; the VirtualMachine is being created.
    Scheduled,
    /// The VirtualMachine is starting.
    Provisioning,
    /// The VM runs.
    Running,
    /// The VM runs and its node is Ready.
    Ready,
    /// Stopped on purpose (run strategy Halted).
    Halted,
    /// The VM cannot be placed or started; see the conditions.
    Failed,
}

impl VmPhase {
    /// The phase of a VM whose spec or surroundings the operator refuses (an invalid spec, a
    /// missing host or join Secret, a resize that does not fit): nothing is changed, so a VM
    /// keeps the phase it had; one that never had one is `Pending` until it is placed and
    /// `Scheduled` after (its host is held, its VirtualMachine not yet made).
    pub fn while_refused(previous: Option<VmPhase>, placed: bool) -> VmPhase {
        match (previous, placed) {
            (Some(phase), _) => phase,
            (None, false) => VmPhase::Pending,
            (None, true) => VmPhase::Scheduled,
        }
    }
}

/// What the operator observed of the VM.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalystVMStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VmPhase>,
    /// The CatalystHost the VM is placed on. Once set, the planner never moves it; only a drain
    /// or a fenced host does (`moving`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The move under way, while the VM leaves its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<VmMove>,
    /// Name of the KubeVirt VirtualMachine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine_name: Option<String>,
    /// Name of the Kubernetes node the VM became, once it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Cores and memory left for ServiceGroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<super::Resources>,
    /// The topology manager policy the VM's kubelet admits replicas under:
    /// `single-numa-node` when the guest has one NUMA node, `restricted` under NUMA passthrough,
    /// where a replica larger than a guest cell must span cells rather than be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_manager_policy: Option<String>,
    /// The host's CPUs the VM's launcher pod holds exclusively, as the host's kubelet reports
    /// them (a Linux CPU list), and their NUMA nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpus: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_numa: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::VmPhase;

    #[test]
    fn a_refused_vm_keeps_its_phase_or_says_how_far_it_got() {
        assert_eq!(VmPhase::while_refused(Some(VmPhase::Ready), true), VmPhase::Ready);
        assert_eq!(VmPhase::while_refused(Some(VmPhase::Pending), false), VmPhase::Pending);
        assert_eq!(VmPhase::while_refused(None, false), VmPhase::Pending);
        assert_eq!(VmPhase::while_refused(None, true), VmPhase::Scheduled);
    }
}
