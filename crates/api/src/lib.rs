//! The Catalyst API, group `catalyst.io`, version `v1alpha1`: three kinds and the nodes' reports, their schemas and
//! their CEL rules; and [`kubevirt`], the part of KubeVirt's API that Catalyst renders.
//! Everything else builds on these types; the crate has no logic beyond (de)serialization.

pub mod group;
pub mod host;
pub mod kubevirt;
pub mod report;
pub mod rules;
pub mod vm;

pub use group::{ServiceGroup, ServiceGroupSpec, ServiceGroupStatus};
pub use host::{CatalystHost, CatalystHostSpec, CatalystHostStatus};
pub use report::{CatalystNodeReport, CatalystNodeReportSpec};
pub use vm::{CatalystVM, CatalystVMSpec, CatalystVMStatus};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "catalyst.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "catalyst.io/v1alpha1";

/// Schema of a memory or storage quantity. A plain string (not int-or-string) so that the
/// CEL `quantity()` functions accept it; its own rule checks the format.
pub(crate) fn quantity_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "maxLength": 64 })
}

/// Schema of an optional quantity: the same string, nullable as kube's structural rewriter expects.
pub(crate) fn optional_quantity_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "maxLength": 64, "nullable": true })
}

/// Cores and memory, the two resources Catalyst dedicates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct Resources {
    /// Cores, as a CPU quantity: whole (`30`) or, where a launcher pod's sidecar or a node's
    /// headroom adds a fraction, in millicores (`30015m`).
    #[schemars(schema_with = "quantity_schema")]
    pub cpu: Quantity,
    /// Ordinary memory, as a quantity such as 512Gi.
    pub memory: Quantity,
    /// 1Gi hugepages, where there are any.
    #[serde(default, rename = "hugepages-1Gi", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_quantity_schema")]
    pub hugepages_1gi: Option<Quantity>,
    /// 2Mi hugepages, where there are any.
    #[serde(default, rename = "hugepages-2Mi", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_quantity_schema")]
    pub hugepages_2mi: Option<Quantity>,
}
