//! The generated CRDs: `crds/` is current, schemas are structural, the API surface users
//! meet (printer columns, short names, status) is there, and every sample round-trips and
//! keeps every CEL rule.

use catalyst_core::crd;
use catalyst_core::manifest;
use kube::core::cel::Validator;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap().to_path_buf()
}

fn schema(crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition) -> Value {
    serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// The rules of a structural schema that a derive can get wrong: every node has a type (or is
/// int-or-string / preserve-unknown-fields), no `$ref`, and `properties` never sits beside
/// `additionalProperties`.
fn structural_violations(node: &Value, path: &str, found: &mut Vec<String>) {
    let Some(object) = node.as_object() else { return };
    let typed = object.contains_key("type")
        || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !typed {
        found.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$defs"] {
        if object.contains_key(forbidden) {
            found.push(format!("{path}: {forbidden}"));
        }
    }
    if object.contains_key("properties") && object.contains_key("additionalProperties") {
        found.push(format!("{path}: properties beside additionalProperties"));
    }
    for (name, child) in object.get("properties").and_then(Value::as_object).into_iter().flatten() {
        structural_violations(child, &format!("{path}.{name}"), found);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get(key).filter(|c| c.is_object()) {
            structural_violations(child, &format!("{path}[{key}]"), found);
        }
    }
}

#[test]
fn schemas_are_structural_and_described() {
    for (file, definition) in crd::all() {
        let schema = schema(&definition);
        let mut found = Vec::new();
        structural_violations(&schema, "", &mut found);
        assert!(found.is_empty(), "{file}: {found:?}");
        let spec = &schema["properties"]["spec"];
        assert!(spec["description"].as_str().is_some_and(|d| !d.is_empty()), "{file}: spec has no description");
        for (name, field) in spec["properties"].as_object().unwrap() {
            assert!(field["description"].is_string(), "{file}: spec.{name} has no description for kubectl explain");
        }
    }
}

#[test]
fn every_kind_has_status_printer_columns_and_a_short_name() {
    let expected = [
        ("CatalystHost", "Cluster", "chost", vec!["Node", "CPU", "Memory", "VMs", "Ready", "Age"]),
        ("CatalystVM", "Namespaced", "cvm", vec!["Host", "CPU", "Memory", "Phase", "Node", "Pinned", "Age"]),
        ("ServiceGroup", "Namespaced", "sg", vec!["VM", "Replicas", "Ready", "CPU", "Memory", "Pinned", "Age"]),
    ];
    // The fourth, CatalystNodeReport, is an agent's observation, all in its spec: no status.
    for ((_, definition), (kind, scope, short, columns)) in crd::all().into_iter().zip(expected) {
        assert_eq!(definition.spec.names.kind, kind);
        assert_eq!(definition.spec.scope, scope);
        assert_eq!(definition.spec.names.short_names.as_deref(), Some(&[short.to_string()][..]));
        let version = &definition.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{kind}: no status subresource"
        );
        let names: Vec<&str> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        assert_eq!(names, columns, "{kind}");
        let status = &schema(&definition)["properties"]["status"]["properties"];
        assert!(
            status["conditions"].is_object() && status["observedGeneration"].is_object(),
            "{kind}: status lacks conditions"
        );
    }
}

#[test]
fn conditions_have_the_standard_metav1_shape() {
    for (file, definition) in crd::all().into_iter().filter(|(_, d)| d.spec.names.kind != "CatalystNodeReport") {
        let condition = &schema(&definition)["properties"]["status"]["properties"]["conditions"]["items"];
        let required: Vec<&str> =
            condition["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for field in ["type", "status", "lastTransitionTime", "reason", "message"] {
            assert!(required.contains(&field), "{file}: condition.{field} not required");
        }
    }
}

#[test]
fn every_sample_round_trips_and_keeps_every_cel_rule() {
    let (manifests, errors) = manifest::load(&[repo().join("config/samples")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(manifests.hosts.len(), 5);
    assert_eq!(manifests.vms.len(), 19);
    let validator = Validator::new();
    let schemas: Vec<(String, Value)> =
        crd::all().iter().map(|(_, c)| (c.spec.names.kind.clone(), schema(c))).collect();
    let check = |kind: &str, value: Value| {
        let schema = &schemas.iter().find(|(k, _)| k == kind).unwrap().1;
        validator.validate(schema, &value, None).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        value
    };
    for host in &manifests.hosts {
        let value = check("CatalystHost", serde_json::to_value(host).unwrap());
        assert_eq!(&serde_json::from_value::<catalyst_api::CatalystHost>(value).unwrap(), host);
    }
    for vm in &manifests.vms {
        let value = check("CatalystVM", serde_json::to_value(vm).unwrap());
        assert_eq!(&serde_json::from_value::<catalyst_api::CatalystVM>(value).unwrap(), vm);
    }
    for group in &manifests.groups {
        let value = check("ServiceGroup", serde_json::to_value(group).unwrap());
        assert_eq!(&serde_json::from_value::<catalyst_api::ServiceGroup>(value).unwrap(), group);
    }
}
