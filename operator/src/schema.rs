//! Strict structural checks of a JSON value against an OpenAPI v3 schema, the way a strict
//! client (`kubectl apply --validate=strict`) sees it: a field the schema does not declare is
//! an error, not something silently dropped.

use serde_json::Value;

/// Paths (such as `spec.template.ports[0].protocl`) of every field in `value` that `schema`
/// does not declare. `$ref`s are not followed: the schema must be inlined, as CRD schemas are.
pub fn unknown_fields(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, value, path, &mut found);
    found
}

fn walk(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (name, field) in fields {
                let child = join(path, name);
                match (properties.and_then(|p| p.get(name)), additional) {
                    (Some(field_schema), _) => walk(field_schema, field, &child, found),
                    (None, Some(map_values)) => walk(map_values, field, &child, found),
                    // A schema with neither says nothing about its fields (`type: object` alone).
                    (None, None) if properties.is_none() => {}
                    (None, None) => found.push(child),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_undeclared_fields_at_every_depth() {
        let schema = json!({"properties": {
            "spec": {"properties": {
                "cpu": {"type": "integer"},
                "ports": {"items": {"properties": {"port": {"type": "integer"}}}},
                "labels": {"additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "opaque": {"type": "object"}
            }}
        }});
        let value = json!({"spec": {
            "cpu": 1, "cpus": 2,
            "ports": [{"port": 80}, {"port": 81, "protocl": "TCP"}],
            "labels": {"anything": "goes"},
            "free": {"x": {"y": 1}},
            "opaque": {"z": 1}
        }});
        assert_eq!(unknown_fields(&schema, &value, ""), vec!["spec.cpus", "spec.ports[1].protocl"]);
    }
}
