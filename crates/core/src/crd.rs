//! The CustomResourceDefinitions, generated from the Rust types. `crds/` holds their YAML,
//! written by `kubectl-catalyst crds --out-dir crds/`; a test fails when it is stale.
//!
//! Every string, list and map in the schemas has a maximum size. The API server estimates the
//! cost of each CEL rule from the sizes of what the rule reads and of the lists around it; an
//! unbounded list or string is taken to be as large as a whole request, and a CRD with such a
//! rule is refused at install time. Bounds also keep a typo'd or hostile object small. A field
//! bounded by its type's own schema (`#[schemars(length(max = ...))]`) keeps that bound; every
//! other one gets its limit from [`SIZE_LIMITS`], or the default for its kind.

use catalyst_api::{CatalystHost, CatalystNodeReport, CatalystVM, ServiceGroup};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

/// The longest string a field may hold unless [`SIZE_LIMITS`] says otherwise: paths, probe
/// hosts and headers, names of config maps and secrets.
pub const DEFAULT_MAX_LENGTH: u64 = 1024;
/// The most items a list may hold unless [`SIZE_LIMITS`] says otherwise.
pub const DEFAULT_MAX_ITEMS: u64 = 64;
/// The most keys a map may hold unless [`SIZE_LIMITS`] says otherwise.
pub const DEFAULT_MAX_PROPERTIES: u64 = 64;

/// A maximum size for one schema node, by its path (`[]` for a list's items, `{}` for a map's
/// values): `maxLength` for a string, `maxItems` for a list, `maxProperties` for a map.
#[derive(Debug)]
pub struct SizeLimit {
    pub path: &'static str,
    pub max: u64,
}

const fn limit(path: &'static str, max: u64) -> SizeLimit {
    SizeLimit { path, max }
}

/// Limits that differ from the defaults. Each is generous for its use and far below what
/// would strain the API server (a request is at most 3 MiB).
pub const SIZE_LIMITS: &[SizeLimit] = &[
    // A container's entrypoint and arguments can be a shell script.
    limit(".spec.template.command", 256),
    limit(".spec.template.command[]", 16384),
    limit(".spec.template.args", 256),
    limit(".spec.template.args[]", 16384),
    // Environment variables: many, and a value can hold a certificate or a JSON document.
    limit(".spec.template.env", 256),
    limit(".spec.template.env[].value", 32768),
    limit(".spec.template.storage", 16),
    // The ledger of a host: more VMs than any host has cores.
    limit(".status.vms", 1024),
    limit(".status.vms[]", 317),
    // metav1.Condition's own limits (apimachinery pkg/apis/meta/v1/types.go, v1.32).
    limit(".status.conditions", 16),
    limit(".status.conditions[].type", 316),
    limit(".status.conditions[].reason", 1024),
    limit(".status.conditions[].message", 32768),
    // Kubernetes names: a DNS subdomain, or `namespace/name`.
    limit(".status.host", 253),
    limit(".status.nodeName", 253),
    limit(".status.virtualMachineName", 253),
    limit(".spec.template.storage[].storageClassName", 253),
];

/// Every CRD with the file name it has in `crds/`, in install order.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("catalysthosts.yaml", bounded(CatalystHost::crd())),
        ("catalystvms.yaml", bounded(CatalystVM::crd())),
        ("servicegroups.yaml", bounded(ServiceGroup::crd())),
        ("catalystnodereports.yaml", bounded(CatalystNodeReport::crd())),
    ]
}

/// The CRD of one kind, as [`all`] gives it.
pub fn of_kind(kind: &str) -> Option<CustomResourceDefinition> {
    all().into_iter().map(|(_, crd)| crd).find(|crd| crd.spec.names.kind == kind)
}

/// The CRD with a size limit on every string, list and map its schemas leave unbounded.
fn bounded(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut value = serde_json::to_value(&*schema).expect("a schema serializes");
            bound(&mut value, "");
            *schema = serde_json::from_value(value).expect("a bounded schema is still a schema");
        }
    }
    crd
}

/// The size keyword of a node of this type, or none (numbers, booleans, int-or-string).
fn size_keyword(node: &Value) -> Option<&'static str> {
    let map = node.get("additionalProperties").is_some_and(Value::is_object);
    match node.get("type").and_then(Value::as_str) {
        Some("string") if node.get("enum").is_none() => Some("maxLength"),
        Some("array") => Some("maxItems"),
        Some("object") if map => Some("maxProperties"),
        _ => None,
    }
}

fn default_max(keyword: &str) -> u64 {
    match keyword {
        "maxLength" => DEFAULT_MAX_LENGTH,
        "maxItems" => DEFAULT_MAX_ITEMS,
        _ => DEFAULT_MAX_PROPERTIES,
    }
}

fn bound(node: &mut Value, path: &str) {
    if let Some(keyword) = size_keyword(node)
        && node.get(keyword).is_none()
    {
        let max = SIZE_LIMITS.iter().find(|l| l.path == path).map_or_else(|| default_max(keyword), |l| l.max);
        node[keyword] = Value::from(max);
    }
    if let Some(properties) = node.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, child) in properties {
            bound(child, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = node.get_mut("items").filter(|i| i.is_object()) {
        bound(items, &format!("{path}[]"));
    }
    if let Some(values) = node.get_mut("additionalProperties").filter(|v| v.is_object()) {
        bound(values, &format!("{path}{{}}"));
    }
}

/// One CRD as the YAML document written to `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let body = crate::yaml::to_string(crd).expect("a CRD always serializes");
    format!("# Generated by `kubectl-catalyst crds`; do not edit.\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths of the schema nodes (`[]` for items, `{}` for map values) where `wanted` holds.
    fn nodes(node: &Value, path: &str, wanted: &dyn Fn(&Value) -> bool, found: &mut Vec<String>) {
        if wanted(node) {
            found.push(path.to_string());
        }
        for (name, child) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
            nodes(child, &format!("{path}.{name}"), wanted, found);
        }
        if let Some(items) = node.get("items") {
            nodes(items, &format!("{path}[]"), wanted, found);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            nodes(values, &format!("{path}{{}}"), wanted, found);
        }
    }

    fn schema(crd: &CustomResourceDefinition) -> Value {
        serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap())
            .unwrap()
    }

    #[test]
    fn every_string_list_and_map_has_a_maximum_size() {
        for (file, crd) in all() {
            let mut unbounded = Vec::new();
            let open = |node: &Value| size_keyword(node).is_some_and(|keyword| node.get(keyword).is_none());
            nodes(&schema(&crd), "", &open, &mut unbounded);
            assert!(unbounded.is_empty(), "{file}: unbounded {unbounded:?}");
        }
    }

    #[test]
    fn every_listed_limit_bounds_a_field_that_had_none() {
        let generated: Vec<Value> =
            [CatalystHost::crd(), CatalystVM::crd(), ServiceGroup::crd()].iter().map(schema).collect();
        for limit in SIZE_LIMITS {
            let mut open = Vec::new();
            for schema in &generated {
                let unbounded = |node: &Value| size_keyword(node).is_some_and(|keyword| node.get(keyword).is_none());
                nodes(schema, "", &unbounded, &mut open);
            }
            assert!(open.iter().any(|p| p == limit.path), "{} names no unbounded field", limit.path);
        }
    }
}
