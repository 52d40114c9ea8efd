//! The part of KubeVirt's `kubevirt.io/v1` VirtualMachine API that Catalyst writes and reads,
//! as typed structs. Field names follow KubeVirt's own OpenAPI definitions exactly (a test
//! validates every rendered VirtualMachine against `v1.VirtualMachine` in KubeVirt's
//! swagger.json, treating every definition as closed); unset fields are never serialized.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `kubevirt.io/v1` VirtualMachine.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachine",
    namespaced,
    status = "VirtualMachineStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_volume_templates: Vec<DataVolumeTemplate>,
    /// Defaulted when read, so a hand-mangled VirtualMachine is still read (and then repaired).
    #[serde(default)]
    pub template: InstanceTemplate,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct InstanceTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    #[serde(default)]
    pub spec: InstanceSpec,
}

/// The template's metadata: KubeVirt copies labels and annotations onto the VMI and its pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    #[serde(default)]
    pub domain: Domain,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// What a drain of the VM's node does to it: `None` (its pod is evicted and the VM
    /// restarts), `LiveMigrate`, `LiveMigrateIfPossible` or `External`. Without it the VMI takes
    /// the KubeVirt CR's, copied in when the VMI is made (KubeVirt `pkg/defaults/defaults.go`,
    /// `setDefaultEvictionStrategy`), and a cluster-wide `LiveMigrate` holds a drain for ever on a
    /// VM that cannot migrate (`pod-eviction-admitter.go` refuses its eviction with 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_strategy: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Domain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub devices: Devices,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_cpu_placement: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolate_emulator_thread: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<Numa>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Numa {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_mapping_passthrough: Option<Empty>,
}

/// An empty object (`{}`), for KubeVirt's marker types such as `guestMappingPassthrough`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Empty {}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<Hugepages>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hugepages {
    pub page_size: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Devices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoattach_graphics_device: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_order: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DiskTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Empty>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Network {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multus: Option<MultusNetwork>,
}

/// A Multus network (`staging/src/kubevirt.io/api/core/v1/schema.go`, `MultusNetwork`):
/// `default` makes it the pod's default network in place of the cluster network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MultusNetwork {
    pub network_name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

/// A VMI volume: exactly one source is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_disk: Option<ContainerDisk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<DataVolumeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_no_cloud: Option<CloudInitNoCloud>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ContainerDisk {
    pub image: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DataVolumeRef {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    pub claim_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CloudInitNoCloud {
    /// The Secret holding the user data (key `userdata`), so it never sits in the VM's spec.
    #[serde(rename = "secretRef", default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// A DataVolume KubeVirt creates with the VM and deletes with it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DataVolumeTemplate {
    pub metadata: ObjectMeta,
    pub spec: DataVolumeSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DataVolumeSpec {
    pub source: DataVolumeSource,
    pub storage: StorageSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DataVolumeSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<UrlSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<UrlSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct UrlSource {
    pub url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Unset: CDI takes them from the StorageClass's StorageProfile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    pub resources: StorageResources,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StorageResources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
}

/// What the operator reads back from KubeVirt.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printable_status: Option<PrintableStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// Such as Ready, Paused, Failure and RestartRequired (a spec change waits for a restart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<VirtualMachineCondition>,
}

/// KubeVirt's one-word summary of a VirtualMachine (`status.printableStatus`), as
/// `VirtualMachinePrintableStatus` lists it in `staging/src/kubevirt.io/api/core/v1/types.go`
/// (KubeVirt v1.x). A value this list lacks (a newer KubeVirt's) is kept as it is written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "String", into = "String")]
pub enum PrintableStatus {
    Stopped,
    Provisioning,
    Starting,
    Running,
    Paused,
    Stopping,
    Terminating,
    CrashLoopBackOff,
    Migrating,
    Unknown,
    ErrorUnschedulable,
    ErrImagePull,
    ImagePullBackOff,
    ErrorPvcNotFound,
    DataVolumeError,
    WaitingForVolumeBinding,
    Other(String),
}

impl PrintableStatus {
    const KNOWN: [(PrintableStatus, &'static str); 16] = [
        (PrintableStatus::Stopped, "Stopped"),
        (PrintableStatus::Provisioning, "Provisioning"),
        (PrintableStatus::Starting, "Starting"),
        (PrintableStatus::Running, "Running"),
        (PrintableStatus::Paused, "Paused"),
        (PrintableStatus::Stopping, "Stopping"),
        (PrintableStatus::Terminating, "Terminating"),
        (PrintableStatus::CrashLoopBackOff, "CrashLoopBackOff"),
        (PrintableStatus::Migrating, "Migrating"),
        (PrintableStatus::Unknown, "Unknown"),
        (PrintableStatus::ErrorUnschedulable, "ErrorUnschedulable"),
        (PrintableStatus::ErrImagePull, "ErrImagePull"),
        (PrintableStatus::ImagePullBackOff, "ImagePullBackOff"),
        (PrintableStatus::ErrorPvcNotFound, "ErrorPvcNotFound"),
        (PrintableStatus::DataVolumeError, "DataVolumeError"),
        (PrintableStatus::WaitingForVolumeBinding, "WaitingForVolumeBinding"),
    ];

    pub fn as_str(&self) -> &str {
        match self {
            PrintableStatus::Other(other) => other,
            known => Self::KNOWN.iter().find(|(k, _)| k == known).map_or("", |(_, name)| name),
        }
    }

    /// A VM that cannot start until someone acts (types.go's error statuses).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            PrintableStatus::ErrorUnschedulable
                | PrintableStatus::ErrImagePull
                | PrintableStatus::ImagePullBackOff
                | PrintableStatus::CrashLoopBackOff
                | PrintableStatus::ErrorPvcNotFound
                | PrintableStatus::DataVolumeError
        )
    }
}

impl From<String> for PrintableStatus {
    fn from(text: String) -> Self {
        Self::KNOWN.into_iter().find(|(_, name)| *name == text).map_or(PrintableStatus::Other(text), |(k, _)| k)
    }
}

impl From<PrintableStatus> for String {
    fn from(status: PrintableStatus) -> Self {
        status.as_str().to_string()
    }
}

impl std::fmt::Display for PrintableStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct VirtualMachineCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::PrintableStatus;

    #[test]
    fn printable_statuses_read_and_write_as_kubevirt_spells_them() {
        for (status, name) in PrintableStatus::KNOWN {
            assert_eq!(serde_json::to_value(&status).unwrap(), name);
            assert_eq!(serde_json::from_value::<PrintableStatus>(name.into()).unwrap(), status);
        }
        let newer: PrintableStatus = serde_json::from_value("WaitingForReceiver".into()).unwrap();
        assert_eq!(newer, PrintableStatus::Other("WaitingForReceiver".into()));
        assert_eq!(serde_json::to_value(&newer).unwrap(), "WaitingForReceiver");
        assert!(PrintableStatus::ErrorUnschedulable.is_failure() && !newer.is_failure());
    }
}

/// `kubevirt.io/v1` VirtualMachineInstance, only what Catalyst reads: where it runs and the
/// addresses KubeVirt reports for its interfaces (`staging/src/kubevirt.io/api/core/v1/types.go`,
/// KubeVirt v1.9.0, `VirtualMachineInstanceStatus` and `VirtualMachineInstanceNetworkInterface`).
/// Catalyst never writes one: KubeVirt makes it from the VirtualMachine.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachineInstance",
    namespaced,
    status = "VirtualMachineInstanceStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceSpec {
    /// The nodes it may run on; the `LiveUpdate` rollout strategy copies the VirtualMachine's
    /// into a running instance (`handleAffinityChangeRequest`, `pkg/virt-controller/watch/vm/vm.go`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceStatus {
    /// Such as Scheduling, Running, Succeeded, Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The node the VM runs on: its host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InstanceInterface>,
    /// Such as `LiveMigratable` (`pkg/virt-handler/vm.go`, `calculateLiveMigrationCondition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<InstanceCondition>,
}

/// A condition of an instance, as KubeVirt writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct InstanceCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `kubevirt.io/v1` VirtualMachineInstanceMigration, as Catalyst writes and reads it: one live
/// migration of an instance, to a node its `nodeSelector` allows (`staging/src/kubevirt.io/api/core/v1/types.go`,
/// KubeVirt v1.9.0).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachineInstanceMigration",
    namespaced,
    status = "MigrationStatus",
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceMigrationSpec {
    /// The instance to migrate (its VirtualMachine's name).
    pub vmi_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Pending, Scheduling, Scheduled, PreparingTarget, TargetReady, Running, Succeeded, Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// For a bridged interface on the pod network, KubeVirt fills the addresses from the pod's
/// own (no guest agent needed); a guest agent adds what the guest reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInterface {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "ipAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, rename = "ipAddresses", skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
}
