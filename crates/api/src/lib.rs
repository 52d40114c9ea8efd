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

/// Schema of a positive quantity: an integer or a string, as Kubernetes' own quantities are (the
/// OpenAPI definition of apimachinery's `resource.Quantity`), so `memory: 512Gi` and
/// `memory: 549755813888` read as they do in a Pod. The structural form is the API server's own
/// for int-or-string (apiextensions-apiserver v0.32 `pkg/apiserver/schema/validation.go`: `anyOf`
/// of integer and string); `pattern` and `maxLength` hold the string, `minimum` the integer.
pub(crate) fn quantity_schema(_: &mut SchemaGenerator) -> Schema {
    int_or_string(rules::POSITIVE_QUANTITY_PATTERN, 1)
}

/// Schema of a quantity that may be 0 (`reserved: {memory: 0}`).
pub(crate) fn non_negative_quantity_schema(_: &mut SchemaGenerator) -> Schema {
    int_or_string(rules::QUANTITY_PATTERN, 0)
}

/// Schema of an optional positive quantity: the same, nullable as kube's structural rewriter expects.
pub(crate) fn optional_quantity_schema(generator: &mut SchemaGenerator) -> Schema {
    nullable(quantity_schema(generator))
}

/// Schema of a quantity the operator writes into a status: int-or-string, unchecked beyond its size.
pub(crate) fn status_quantity_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}], "maxLength": 64})
}

/// Schema of an optional quantity in a status.
pub(crate) fn optional_status_quantity_schema(generator: &mut SchemaGenerator) -> Schema {
    nullable(status_quantity_schema(generator))
}

fn int_or_string(pattern: &str, minimum: u64) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": pattern,
        "maxLength": 64,
        "minimum": minimum
    })
}

fn nullable(mut schema: Schema) -> Schema {
    schema.insert("nullable".into(), true.into());
    schema
}

/// Cores and memory, the two resources Catalyst dedicates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct Resources {
    /// Cores, as a CPU quantity: whole (`30`) or, where a launcher pod's sidecar or a node's
    /// headroom adds a fraction, in millicores (`30015m`).
    #[schemars(schema_with = "status_quantity_schema")]
    pub cpu: Quantity,
    /// Ordinary memory, as a quantity such as 512Gi.
    #[schemars(schema_with = "status_quantity_schema")]
    pub memory: Quantity,
    /// 1Gi hugepages, where there are any.
    #[serde(default, rename = "hugepages-1Gi", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_status_quantity_schema")]
    pub hugepages_1gi: Option<Quantity>,
    /// 2Mi hugepages, where there are any.
    #[serde(default, rename = "hugepages-2Mi", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_status_quantity_schema")]
    pub hugepages_2mi: Option<Quantity>,
}
