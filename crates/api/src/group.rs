//! `ServiceGroup`: N replicas of a container with whole cores and memory, pinned into one CatalystVM.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, ContainerPort, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource, Probe,
    SecretVolumeSource, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// N replicas of one container, each with whole dedicated cores and memory (Guaranteed QoS,
/// exclusive cores under the kubelet's static CPU manager), all inside one CatalystVM.
/// Replicas are named `<name>-1` ... `<name>-N`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "catalyst.io",
    version = "v1alpha1",
    kind = "ServiceGroup",
    namespaced,
    shortname = "sg",
    category = "catalyst",
    derive = "PartialEq",
    doc = "Replicas of one container with whole dedicated cores and memory, pinned into one CatalystVM.",
    selectable = ".spec.vm",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    status = "ServiceGroupStatus",
    printcolumn = r#"{"name":"VM","type":"string","jsonPath":".spec.vm"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"CPU","type":"integer","description":"cores per replica","jsonPath":".spec.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","description":"memory per replica","jsonPath":".spec.memory"}"#,
    printcolumn = r#"{"name":"Pinned","type":"string","jsonPath":".status.conditions[?(@.type==\"Pinned\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGroupSpec {
    /// The CatalystVM, in the same namespace, that runs the replicas.
    #[schemars(length(min = 1, max = 253))]
    pub vm: String,
    /// Number of replicas.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Dedicated whole cores per replica.
    #[schemars(range(min = 1))]
    pub cpu: u32,
    /// Dedicated memory per replica, such as 42Gi.
    #[schemars(schema_with = "super::quantity_schema")]
    pub memory: Quantity,
    /// The container every replica runs.
    pub template: ReplicaTemplate,
    /// What the operator does about a replica its VM-node's kubelet gave the wrong cores.
    #[serde(default)]
    pub pinning: PinningPolicy,
}

/// What becomes of a replica found not pinned (its container on the shared pool, on cores
/// another holds, or across NUMA nodes where one was wanted).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinningPolicy {
    #[serde(default)]
    pub repair: Repair,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Repair {
    /// Its pod is evicted (so any PodDisruptionBudget of the group holds), one replica at a
    /// time and with a growing pause, and its StatefulSet makes it again, which the kubelet's
    /// static CPU manager admits on cores of its own.
    #[default]
    Recreate,
    /// Reported (`Pinned=False` and a Warning), left as it is.
    Report,
}

/// What a docker-compose service says about its container, in Kubernetes terms.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaTemplate {
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Entrypoint (docker-compose `entrypoint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments (docker-compose `command`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    /// Volumes shared by the replica's container (config, secrets, scratch space, existing claims).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ReplicaVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Persistent storage of each replica's own (a docker-compose named volume per replica).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<ReplicaStorage>,
    /// Extra labels on each replica's pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A volume: exactly one source, as in a pod's volume list (the sources docker-compose users need).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaVolume {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

/// A persistent volume each replica gets for itself, mounted at `mountPath`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStorage {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub mount_path: String,
    #[schemars(schema_with = "super::quantity_schema")]
    pub size: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// What the operator observed of the group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGroupStatus {
    /// Replicas that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas whose pod is Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Cores and memory the group takes from its VM (replicas x per-replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<super::Resources>,
    /// The cores each replica holds, as its node's kubelet reports them (a CatalystNodeReport).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<ReplicaCores>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The cores one replica holds exclusively, as its node's kubelet reports them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct ReplicaCores {
    /// The replica's pod.
    pub replica: String,
    pub node: String,
    /// A Linux CPU list of the guest's CPUs, such as `17-24`; empty when it holds none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpus: String,
    /// The NUMA nodes of those CPUs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numa: Vec<u32>,
}
