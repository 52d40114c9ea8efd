//! `CatalystNodeReport`: what one node's kubelet says of the CPUs its pods hold exclusively.
//! `catalyst-agent` on that node writes it from the kubelet's PodResources API; the operator
//! reads it to tell whether every VM and every replica holds its cores (the `Pinned`
//! condition). Cluster-scoped, named after its node.
//!
//! The report is the agent's observation, kept in `spec` as Node Feature Discovery's
//! `NodeFeature` keeps a worker's: the agent is its only writer, and it needs no status.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "catalyst.io",
    version = "v1alpha1",
    kind = "CatalystNodeReport",
    shortname = "cnr",
    category = "catalyst",
    derive = "PartialEq",
    doc = "The CPUs each pod on a node holds exclusively, as the node's kubelet reports them; written by catalyst-agent.",
    printcolumn = r#"{"name":"Exclusive","type":"string","description":"CPUs the kubelet may give exclusively","jsonPath":".spec.allocatableCpus"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
/// What the node's kubelet and kernel report: the CPUs it may give exclusively, its NUMA cells,
/// and the CPUs each container of each pod holds.
pub struct CatalystNodeReportSpec {
    /// The CPUs the kubelet may give to containers exclusively (PodResources
    /// `GetAllocatableResources`), as a Linux CPU list such as `2-31,34-63`.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub allocatable_cpus: String,
    /// The node's NUMA cells and their CPUs (from sysfs); empty when the node shows none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub numa: Vec<NumaCell>,
    /// The node's pods (PodResources `List`) with the CPUs each container holds exclusively.
    #[serde(default)]
    #[schemars(length(max = 2048))]
    pub pods: Vec<PodCpus>,
    /// When the agent last renewed the report: at least every minute, so a report that stops
    /// being renewed is known to be stale (its verdicts Unknown) rather than believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// A NUMA cell, its CPUs and its hugepage pools.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct NumaCell {
    /// The cell's id, as sysfs numbers it.
    pub id: u32,
    /// A Linux CPU list.
    #[schemars(length(max = 4096))]
    pub cpus: String,
    /// The cell's hugepage pools, one per page size the kernel offers; empty from an agent that
    /// does not read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub hugepages: Vec<CellHugepages>,
}

/// One cell's pool of one hugepage size (sysfs
/// `devices/system/node/node<N>/hugepages/hugepages-<kB>kB/`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct CellHugepages {
    /// The page size as a quantity: `1Gi`, `2Mi`.
    #[schemars(length(max = 16))]
    pub size: String,
    /// Pages in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages no one holds (`free_hugepages`).
    pub free: u64,
}

/// A pod and the CPUs its containers hold exclusively.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct PodCpus {
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub name: String,
    /// Its containers, each with the CPUs it holds exclusively.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub containers: Vec<ContainerCpus>,
}

/// A container and the CPUs it holds exclusively: none (empty) when it runs on the shared pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct ContainerCpus {
    #[schemars(length(max = 253))]
    pub name: String,
    /// A Linux CPU list, such as `17-24`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 4096))]
    pub cpus: String,
}
