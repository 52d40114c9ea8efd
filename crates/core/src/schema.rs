//! Strict checks of a JSON value against an OpenAPI schema, the way a strict client
//! (`kubectl apply --validate=strict`) or a structural CRD sees it: a field the schema does
//! not declare is an error, not something silently dropped. Works on inlined CRD schemas and
//! on Swagger documents whose definitions refer to each other with `$ref`.

use serde_json::Value;
use std::fmt;

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaViolation {
    /// A field the schema does not declare.
    Unknown { path: String },
    /// A value of the wrong JSON type.
    Type { path: String, expected: String },
    /// A required field that is missing.
    Required { path: String },
    /// A value outside the schema's enum.
    Enum { path: String },
    /// A string longer than `maxLength` characters.
    TooLong { path: String, max: u64 },
    /// A list with more than `maxItems` items, or a map with more than `maxProperties` keys.
    TooMany { path: String, max: u64, items: &'static str },
    /// A string shorter than `minLength`, a list shorter than `minItems`.
    TooShort { path: String, min: u64, items: &'static str },
    /// A string that does not match the schema's `pattern`.
    Pattern { path: String, value: String, pattern: String },
    /// A number below `minimum` or above `maximum`.
    OutOfRange { path: String, value: String, bound: String },
    /// A `$ref` the document does not define.
    BadRef { path: String, reference: String },
}

impl SchemaViolation {
    /// Whether the API server, finding this, leaves the CEL rules unchecked: a value of the
    /// wrong shape (type, required, enum, too long, too many) is not what the rules were
    /// written for (apiextensions-apiserver `pkg/registry/customresource/strategy.go`,
    /// `hasBlockingErr`, v1.32). Unknown fields and range errors do not block.
    pub fn blocks_rules(&self) -> bool {
        matches!(
            self,
            SchemaViolation::Type { .. }
                | SchemaViolation::Required { .. }
                | SchemaViolation::Enum { .. }
                | SchemaViolation::TooLong { .. }
                | SchemaViolation::TooMany { .. }
        )
    }
}

/// What the API server adds when a blocking violation kept it from checking the CEL rules
/// (the same `hasBlockingErr`).
pub const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaViolation::Unknown { path } => write!(f, "{path}: unknown field"),
            SchemaViolation::Type { path, expected } => write!(f, "{path}: expected {expected}"),
            SchemaViolation::Required { path } => write!(f, "{path}: required field missing"),
            SchemaViolation::Enum { path } => write!(f, "{path}: not one of the allowed values"),
            SchemaViolation::TooLong { path, max } => write!(f, "{path}: may not be longer than {max} characters"),
            SchemaViolation::TooMany { path, max, items } => write!(f, "{path}: must have at most {max} {items}"),
            SchemaViolation::TooShort { path, min, items } => write!(f, "{path}: must have at least {min} {items}"),
            SchemaViolation::OutOfRange { path, value, bound } => write!(f, "{path} = {value}: should be {bound}"),
            SchemaViolation::Pattern { path, value, pattern } => {
                write!(f, "{path} = {value:?}: should match '{pattern}'")
            }
            SchemaViolation::BadRef { path, reference } => write!(f, "{path}: unresolved $ref {reference}"),
        }
    }
}

/// Validates `value` against `schema`. `document` is what `$ref`s (`#/definitions/NAME`)
/// resolve against; pass the schema itself when it has none.
pub fn validate(document: &Value, schema: &Value, value: &Value, path: &str) -> Vec<SchemaViolation> {
    let mut found = Vec::new();
    walk(document, schema, value, path, &mut found);
    found
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    match schema.get("$ref").and_then(Value::as_str) {
        None => Ok(schema),
        Some(reference) => reference
            .strip_prefix("#/definitions/")
            .and_then(|name| document.get("definitions")?.get(name))
            .ok_or_else(|| reference.to_string())
            .and_then(|target| resolve(document, target)),
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn walk(document: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<SchemaViolation>) {
    let schema = match resolve(document, schema) {
        Ok(schema) => schema,
        Err(reference) => {
            found.push(SchemaViolation::BadRef { path: path.to_string(), reference });
            return;
        }
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
            found.push(SchemaViolation::Type { path: path.to_string(), expected: "a value, not null".into() });
        }
        return;
    }
    let allowed: Vec<&str> = if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        vec!["integer", "string"]
    } else {
        match schema.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    };
    if !allowed.is_empty() && !allowed.iter().any(|t| type_matches(t, value)) {
        found.push(SchemaViolation::Type { path: path.to_string(), expected: allowed.join(" or ") });
        return;
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        found.push(SchemaViolation::Enum { path: path.to_string() });
    }
    bounds(schema, value, path, found);
    if let (Some(pattern), Value::String(text)) = (schema.get("pattern").and_then(Value::as_str), value)
        && !matches_pattern(pattern, text)
    {
        let (path, value, pattern) = (path.to_string(), text.clone(), pattern.to_string());
        found.push(SchemaViolation::Pattern { path, value, pattern });
    }
    match value {
        Value::Object(fields) => {
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = required.as_str()
                    && !fields.contains_key(name)
                {
                    found.push(SchemaViolation::Required { path: join(path, name) });
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (name, field) in fields {
                let child = join(path, name);
                match (properties.and_then(|p| p.get(name)), additional) {
                    (Some(field_schema), _) => walk(document, field_schema, field, &child, found),
                    (None, Some(map_values)) => walk(document, map_values, field, &child, found),
                    // A schema with neither says nothing about its fields (`type: object` alone).
                    (None, None) if properties.is_none() => {}
                    (None, None) => found.push(SchemaViolation::Unknown { path: child }),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(document, item_schema, item, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// Whether `text` matches an OpenAPI `pattern` (an ECMA 262 regular expression, which the API
/// server reads with Go's RE2; the `regex` crate reads the same syntax). The few patterns of a
/// schema are compiled once per thread. One that does not compile is not held against the value:
/// the API server refuses such a CRD, so it cannot meet one.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    thread_local! {
        static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>> =
            Default::default();
    }
    COMPILED.with_borrow_mut(|compiled| {
        let regex = compiled.entry(pattern.to_string()).or_insert_with(|| regex::Regex::new(pattern).ok());
        regex.as_ref().is_none_or(|regex| regex.is_match(text))
    })
}

/// The size and range limits of a schema node (`maxLength`, `maxItems`, `maxProperties`,
/// `minLength`, `minItems`, `minimum`, `maximum`).
fn bounds(schema: &Value, value: &Value, path: &str, found: &mut Vec<SchemaViolation>) {
    let limit = |name: &str| schema.get(name).and_then(Value::as_u64);
    let path = path.to_string();
    let (size, max, min, items) = match value {
        // Characters, as go-openapi's MaxLength counts them (utf8.RuneCountInString).
        Value::String(text) => (text.chars().count(), limit("maxLength"), limit("minLength"), "characters"),
        Value::Array(list) => (list.len(), limit("maxItems"), limit("minItems"), "items"),
        Value::Object(map) => (map.len(), limit("maxProperties"), limit("minProperties"), "properties"),
        Value::Number(number) => {
            let value = number.to_string();
            let number = number.as_f64().unwrap_or_default();
            if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                && number < minimum
            {
                let bound = format!("greater than or equal to {minimum}");
                found.push(SchemaViolation::OutOfRange { path, value, bound });
            } else if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                && number > maximum
            {
                let bound = format!("less than or equal to {maximum}");
                found.push(SchemaViolation::OutOfRange { path, value, bound });
            }
            return;
        }
        _ => return,
    };
    let size = size as u64;
    match (max, min) {
        (Some(max), _) if size > max && value.is_string() => found.push(SchemaViolation::TooLong { path, max }),
        (Some(max), _) if size > max => found.push(SchemaViolation::TooMany { path, max, items }),
        (_, Some(min)) if size < min => found.push(SchemaViolation::TooShort { path, min, items }),
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
        let unknown: Vec<String> = validate(&schema, &schema, &value, "").iter().map(ToString::to_string).collect();
        assert_eq!(unknown, ["spec.cpus: unknown field", "spec.ports[1].protocl: unknown field"]);
    }

    #[test]
    fn follows_refs_and_checks_types_required_and_enums() {
        let document = json!({"definitions": {
            "CPU": {"type": "object", "required": ["cores"], "properties": {
                "cores": {"type": "integer"},
                "dedicatedCpuPlacement": {"type": "boolean"},
                "model": {"type": "string", "enum": ["host-passthrough", "host-model"]}
            }},
            "Quantity": {"type": ["string", "integer", "number"]},
            "Domain": {"type": "object", "properties": {
                "cpu": {"$ref": "#/definitions/CPU"},
                "memory": {"$ref": "#/definitions/Quantity"},
                "missing": {"$ref": "#/definitions/Nowhere"}
            }}
        }});
        let schema = json!({"$ref": "#/definitions/Domain"});
        let value = json!({
            "cpu": {"dedicatedCPUPlacement": true, "model": "fast", "dedicatedCpuPlacement": "yes"},
            "memory": "512Gi",
            "missing": {}
        });
        let found: Vec<String> =
            validate(&document, &schema, &value, "domain").iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "domain.cpu.cores: required field missing",
                "domain.cpu.dedicatedCPUPlacement: unknown field",
                "domain.cpu.dedicatedCpuPlacement: expected boolean",
                "domain.cpu.model: not one of the allowed values",
                "domain.missing: unresolved $ref #/definitions/Nowhere",
            ]
        );
        assert!(validate(&document, &schema, &json!({"memory": 5, "cpu": {"cores": 2}}), "").is_empty());
    }

    #[test]
    fn checks_sizes_and_ranges_and_says_which_violations_block_the_rules() {
        let schema = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 3, "minLength": 1},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
            "cpu": {"type": "integer", "minimum": 1, "maximum": 4}
        }});
        let value = json!({"name": "héllo", "tags": ["a", "b", "c"], "labels": {"a": "1", "b": "2"}, "cpu": 0});
        let found = validate(&schema, &schema, &value, "spec");
        let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "spec.cpu = 0: should be greater than or equal to 1",
                "spec.labels: must have at most 1 properties",
                "spec.name: may not be longer than 3 characters",
                "spec.tags: must have at most 2 items",
            ]
        );
        assert_eq!(found.iter().map(SchemaViolation::blocks_rules).collect::<Vec<_>>(), [false, true, true, true]);
        let fine = json!({"name": "é", "tags": [], "labels": {}, "cpu": 4});
        assert!(validate(&schema, &schema, &fine, "").is_empty());
        let short = validate(&schema, &schema, &json!({"name": "", "cpu": 5}), "");
        let short: Vec<String> = short.iter().map(ToString::to_string).collect();
        assert_eq!(short, ["cpu = 5: should be less than or equal to 4", "name: must have at least 1 characters"]);
    }
}
