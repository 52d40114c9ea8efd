//! OpenAPI v3, as kubectl reads it for `explain` and client-side validation: one document per
//! group/version. Custom resources carry their CRD's schema; built-in kinds a schema that
//! accepts any object (the emulator does not know their fields).

use crate::resources::Resource;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn group_version_path(resource: &Resource) -> String {
    if resource.group.is_empty() {
        format!("api/{}", resource.version)
    } else {
        format!("apis/{}/{}", resource.group, resource.version)
    }
}

/// `/openapi/v3`: where each group/version's document is.
pub fn index(resources: &[Resource]) -> Value {
    let paths: BTreeMap<String, Value> = resources
        .iter()
        .map(|r| {
            let path = group_version_path(r);
            (path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}")}))
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/{api/v1 | apis/group/version}`.
pub fn document(resources: &[Resource], group_version: &str) -> Option<Value> {
    let served: Vec<&Resource> = resources.iter().filter(|r| group_version_path(r) == group_version).collect();
    if served.is_empty() {
        return None;
    }
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for resource in &served {
        // kubectl looks here for `fieldValidation` to leave strict validation to the server.
        let gvk = json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
        let operation = json!({
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
        });
        let scope = if resource.namespaced { "namespaces/{namespace}/" } else { "" };
        let path = format!("/{}/{scope}{}/{{name}}", group_version_path(resource), resource.plural);
        paths.insert(path, json!({"put": operation, "patch": operation}));
        let collection = format!("/{}/{scope}{}", group_version_path(resource), resource.plural);
        paths.insert(collection, json!({"post": operation}));
    }
    for resource in served {
        let mut schema = match &resource.schema {
            Some(schema) => {
                let mut schema = schema.tree.clone();
                let properties = schema["properties"].as_object_mut().expect("a CRD schema has properties");
                properties
                    .insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion of the object."}));
                properties.insert("kind".into(), json!({"type": "string", "description": "Kind of the object."}));
                properties.insert("metadata".into(), json!({"type": "object", "description": "Standard object metadata.", "x-kubernetes-preserve-unknown-fields": true}));
                schema
            }
            None => {
                json!({"type": "object", "description": format!("{} (any fields: the emulator does not describe built-in kinds)", resource.kind), "x-kubernetes-preserve-unknown-fields": true})
            }
        };
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": resource.group, "version": resource.version, "kind": resource.kind}]);
        let name = format!(
            "{}.{}.{}",
            if resource.group.is_empty() { "core" } else { &resource.group },
            resource.version,
            resource.kind
        );
        schemas.insert(name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (catalyst apiserver-emulator)", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
