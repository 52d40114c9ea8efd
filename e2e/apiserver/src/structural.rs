//! A custom resource checked against its CRD's structural schema, as the API server checks it
//! before the CEL rules: unknown fields pruned (or refused, when the client asks for strict
//! field validation), then the OpenAPI value validations, reported in the API server's words.
//!
//! What it models, from Kubernetes v1.32 (apiextensions-apiserver and kube-openapi as vendored
//! there):
//! - Pruning: a field the schema does not declare is dropped, below any node without
//!   `x-kubernetes-preserve-unknown-fields`; an `x-kubernetes-embedded-resource` keeps its
//!   `apiVersion`, `kind` and `metadata` (`pkg/apiserver/schema/pruning/algorithm.go`). The
//!   root's `apiVersion`, `kind` and `metadata` are the object's own and not the schema's.
//! - Field validation (`fieldValidation` of the request, `k8s.io/apiserver` v0.32
//!   `pkg/endpoints/handlers/rest.go` and `customresource_handler.go`): `Strict` refuses unknown
//!   fields with 400 "strict decoding error: unknown field \"spec.x\"", `Warn` (the default)
//!   and `Ignore` drop them.
//! - Value validation (`pkg/apiserver/validation/validation.go`,
//!   `kubeOpenAPIResultToFieldErrors`, over kube-openapi `pkg/validation/validate`): types
//!   (`nullable`, `x-kubernetes-int-or-string`), `required`, `enum`, `pattern`, `minimum` and
//!   `maximum` (and their exclusive forms), lengths, item and property counts, `uniqueItems`,
//!   `allOf`, `anyOf`, `oneOf` and `not`; and the uniqueness of `x-kubernetes-list-type: set`
//!   and `map` items (`k8s.io/apiserver/pkg/cel/.../listtype` via `validation.go`).
//! - The messages: `k8s.io/apimachinery/pkg/util/validation/field/errors.go` (`ErrorBody`) over
//!   go-openapi's (`kube-openapi/pkg/validation/errors/schema.go`).
//!
//! Left out: `format` checks (kube-openapi checks a few, such as `int32` and `date-time`; the
//! CRDs the suite serves name none that a test writes wrongly), and the validation of
//! `metadata` of embedded resources.

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// How a request wants unknown fields treated: the `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

/// One way a value breaks its schema, as the API server's `field.Error` says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Required,
    /// A value of the wrong type (`field.TypeInvalid`).
    Type {
        value: String,
        detail: String,
    },
    /// Any other broken validation (`field.Invalid`): pattern, bounds, combinators.
    Invalid {
        value: String,
        detail: String,
    },
    /// A value outside the `enum` (`field.NotSupported`).
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    TooLong {
        max: u64,
    },
    TooMany {
        actual: usize,
        max: u64,
    },
    Duplicate {
        value: String,
    },
}

impl Violation {
    /// Whether the API server leaves the CEL rules unchecked after this one
    /// (`pkg/registry/customresource/strategy.go`, `hasBlockingErr`).
    pub fn blocks_rules(&self) -> bool {
        matches!(
            self.kind,
            Kind::Required
                | Kind::Type { .. }
                | Kind::NotSupported { .. }
                | Kind::TooLong { .. }
                | Kind::TooMany { .. }
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.kind {
            Kind::Required => write!(f, "{path}: Required value"),
            Kind::Type { value, detail } | Kind::Invalid { value, detail } => {
                write!(f, "{path}: Invalid value: {value}: {detail}")
            }
            Kind::NotSupported { value, supported } => {
                let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                write!(f, "{path}: Unsupported value: {value}: supported values: {}", quoted.join(", "))
            }
            Kind::TooLong { max } => write!(f, "{path}: Too long: may not be more than {max} bytes"),
            Kind::TooMany { actual, max } => write!(f, "{path}: Too many: {actual}: must have at most {max} items"),
            Kind::Duplicate { value } => write!(f, "{path}: Duplicate value: {value}"),
        }
    }
}

/// Drops the fields `schema` does not declare from a custom resource and returns their paths
/// (`spec.x`), as strict decoding names them.
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(fields) = object.as_object_mut() {
        for (name, value) in fields.iter_mut() {
            if matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(field_schema) = schema.get("properties").and_then(|p| p.get(name)) {
                prune_node(field_schema, value, name, &mut unknown);
            }
        }
        let declared = |name: &str| {
            matches!(name, "apiVersion" | "kind" | "metadata")
                || schema.get("properties").and_then(|p| p.get(name)).is_some()
                || preserves_unknown(schema)
        };
        fields.retain(|name, _| {
            let keep = declared(name);
            if !keep {
                unknown.push(name.clone());
            }
            keep
        });
    }
    unknown.sort();
    unknown
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn prune_node(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let map_values = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
            let keep_unknown = preserves_unknown(schema);
            fields.retain(|name, _| {
                let keep = keep_unknown
                    || map_values.is_some()
                    || properties.is_some_and(|p| p.contains_key(name))
                    || (embedded && matches!(name.as_str(), "apiVersion" | "kind" | "metadata"));
                if !keep {
                    unknown.push(format!("{path}.{name}"));
                }
                keep
            });
            for (name, field) in fields.iter_mut() {
                let child = match (properties.and_then(|p| p.get(name)), map_values) {
                    (Some(declared), _) => declared,
                    (None, Some(values)) => values,
                    (None, None) => continue,
                };
                prune_node(child, field, &format!("{path}.{name}"), unknown);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// The value validations a pruned and defaulted custom resource breaks, in the order the API
/// server finds them. `body` is the resource without its `apiVersion`, `kind` and `metadata`,
/// which are the object's own and not the schema's.
pub fn validate(schema: &Value, body: &Value, patterns: &Patterns) -> Vec<Violation> {
    let mut checker = Checker { patterns, found: Vec::new() };
    checker.check(schema, body, "");
    checker.found
}

/// A schema's `pattern`s, compiled once when its CRD is registered, as the API server compiles
/// them (Go's RE2 syntax, which the `regex` crate shares). The API server refuses a CRD whose
/// pattern does not compile, so one missing here holds nothing against a value.
#[derive(Debug, Default)]
pub struct Patterns(HashMap<String, regex::Regex>);

impl Patterns {
    pub fn of(schema: &Value) -> Self {
        let mut patterns = Patterns::default();
        patterns.collect(schema);
        patterns
    }

    fn collect(&mut self, node: &Value) {
        match node {
            Value::Object(fields) => {
                if let Some(Value::String(pattern)) = fields.get("pattern")
                    && let Ok(regex) = regex::Regex::new(pattern)
                {
                    self.0.insert(pattern.clone(), regex);
                }
                fields.values().for_each(|child| self.collect(child));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect(child)),
            _ => {}
        }
    }

    fn allow(&self, pattern: &str, text: &str) -> bool {
        self.0.get(pattern).is_none_or(|regex| regex.is_match(text))
    }
}

/// One walk of a value against its schema, gathering what it breaks.
struct Checker<'a> {
    patterns: &'a Patterns,
    found: Vec<Violation>,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// How go-openapi names a path in its messages: the field path, or `body` at the root.
fn body_name(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

/// A value as `field.Error` prints it: strings quoted (`%q`), numbers and booleans plain.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

/// The JSON type go-openapi names for a value in a type error.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// go-openapi's `InvalidType` (`typeFailWithData`), whose value is the JSON type found, not the
/// value: `Invalid value: "string": spec.cpu in body must be of type integer: "string"`.
fn type_error(path: &str, expected: &str, value: &Value) -> Kind {
    let found = type_name(value);
    Kind::Type {
        value: format!("{found:?}"),
        detail: format!("{} in body must be of type {expected}: {found:?}", body_name(path)),
    }
}

fn has_type(expected: &str, value: &Value) -> bool {
    match expected {
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn limit(schema: &Value, name: &str) -> Option<u64> {
    schema.get(name).and_then(Value::as_u64)
}

impl Checker<'_> {
    fn check(&mut self, schema: &Value, value: &Value, path: &str) {
        if preserves_unknown(schema) && schema.get("type").is_none() {
            return;
        }
        let at = |kind| Violation { path: path.to_string(), kind };
        let declared = schema.get("type").and_then(Value::as_str);
        let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if value.is_null() {
            // A null is valid only where the schema is nullable (`nullable: true`), or says nothing.
            if schema.get("nullable") != Some(&Value::Bool(true)) && (declared.is_some() || int_or_string) {
                self.found.push(at(type_error(path, declared.unwrap_or("integer,string"), value)));
            }
            return;
        }
        if let Some(expected) = declared
            && !has_type(expected, value)
        {
            self.found.push(at(type_error(path, expected, value)));
            return;
        }
        if int_or_string && !(has_type("integer", value) || value.is_string()) {
            self.found.push(at(type_error(path, "integer,string", value)));
            return;
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array)
            && !choices.contains(value)
        {
            let supported = choices.iter().map(|c| c.as_str().map_or_else(|| c.to_string(), String::from)).collect();
            self.found.push(at(Kind::NotSupported { value: shown(value), supported }));
        }
        match value {
            Value::String(text) => self.string(schema, text, path),
            Value::Number(_) => self.number(schema, value, path),
            Value::Array(items) => self.list(schema, items, path),
            Value::Object(fields) => self.object(schema, fields, path),
            Value::Bool(_) | Value::Null => {}
        }
        self.combinators(schema, value, path);
    }

    fn string(&mut self, schema: &Value, text: &str, path: &str) {
        let at = |kind| Violation { path: path.to_string(), kind };
        // Characters, as kube-openapi counts them (`utf8.RuneCountInString`).
        let length = text.chars().count() as u64;
        if let Some(max) = limit(schema, "maxLength")
            && length > max
        {
            self.found.push(at(Kind::TooLong { max }));
        }
        if let Some(min) = limit(schema, "minLength")
            && length < min
        {
            let detail = format!("{} in body should be at least {min} chars long", body_name(path));
            self.found.push(at(Kind::Invalid { value: format!("{text:?}"), detail }));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !self.patterns.allow(pattern, text)
        {
            let detail = format!("{} in body should match '{pattern}'", body_name(path));
            self.found.push(at(Kind::Invalid { value: format!("{text:?}"), detail }));
        }
    }

    fn number(&mut self, schema: &Value, value: &Value, path: &str) {
        let number = value.as_f64().unwrap_or_default();
        let flag = |name: &str| schema.get(name) == Some(&Value::Bool(true));
        let mut out_of_range = |bound: &str, limit: &Value| {
            let detail = format!("{} in body should be {bound} {limit}", body_name(path));
            self.found.push(Violation { path: path.to_string(), kind: Kind::Invalid { value: shown(value), detail } });
        };
        if let Some(minimum) = schema.get("minimum").filter(|m| m.is_number()) {
            let min = minimum.as_f64().unwrap_or_default();
            if flag("exclusiveMinimum") && number <= min {
                out_of_range("greater than", minimum);
            } else if number < min {
                out_of_range("greater than or equal to", minimum);
            }
        }
        if let Some(maximum) = schema.get("maximum").filter(|m| m.is_number()) {
            let max = maximum.as_f64().unwrap_or_default();
            if flag("exclusiveMaximum") && number >= max {
                out_of_range("less than", maximum);
            } else if number > max {
                out_of_range("less than or equal to", maximum);
            }
        }
        if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64).filter(|f| *f > 0.0)
            && (number / factor).fract() != 0.0
        {
            let detail = format!("{} in body should be a multiple of {factor}", body_name(path));
            self.found.push(Violation { path: path.to_string(), kind: Kind::Invalid { value: shown(value), detail } });
        }
    }

    fn list(&mut self, schema: &Value, items: &[Value], path: &str) {
        if let Some(max) = limit(schema, "maxItems")
            && items.len() as u64 > max
        {
            self.found.push(Violation { path: path.to_string(), kind: Kind::TooMany { actual: items.len(), max } });
        }
        self.at_least(schema, "minItems", items.len(), "items", path);
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"));
            }
        }
        let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
        if schema.get("uniqueItems") == Some(&Value::Bool(true))
            && list_type.is_none()
            && items.iter().enumerate().any(|(i, item)| items[..i].contains(item))
        {
            {
                let detail = format!("{} in body shouldn't contain duplicates", body_name(path));
                self.found
                    .push(Violation { path: path.to_string(), kind: Kind::Invalid { value: "\"\"".into(), detail } });
            }
        }
        // Items of a set are unique values, of a map unique by their keys (`listtype` validation).
        let key_of = |item: &Value| -> Value {
            match list_type {
                Some("map") => {
                    let keys = schema.get("x-kubernetes-list-map-keys").and_then(Value::as_array);
                    Value::Object(
                        keys.into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(|k| (k.to_string(), item.get(k).cloned().unwrap_or(Value::Null)))
                            .collect(),
                    )
                }
                _ => item.clone(),
            }
        };
        if matches!(list_type, Some("set" | "map")) {
            let keys: Vec<Value> = items.iter().map(key_of).collect();
            for (i, key) in keys.iter().enumerate() {
                if keys[..i].contains(key) {
                    let path = format!("{path}[{i}]");
                    self.found.push(Violation { path, kind: Kind::Duplicate { value: shown(key) } });
                }
            }
        }
    }

    /// `minItems` and `minProperties` (go-openapi's `minItemsFail`, `tooFewProperties`).
    fn at_least(&mut self, schema: &Value, keyword: &str, count: usize, what: &str, path: &str) {
        if let Some(min) = limit(schema, keyword)
            && (count as u64) < min
        {
            let detail = format!("{} in body should have at least {min} {what}", body_name(path));
            self.found.push(Violation { path: path.to_string(), kind: Kind::Invalid { value: "\"\"".into(), detail } });
        }
    }

    fn object(&mut self, schema: &Value, fields: &serde_json::Map<String, Value>, path: &str) {
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = required.as_str()
                && !fields.contains_key(name)
            {
                self.found.push(Violation { path: join(path, name), kind: Kind::Required });
            }
        }
        if let Some(max) = limit(schema, "maxProperties")
            && fields.len() as u64 > max
        {
            self.found.push(Violation { path: path.to_string(), kind: Kind::TooMany { actual: fields.len(), max } });
        }
        self.at_least(schema, "minProperties", fields.len(), "properties", path);
        let properties = schema.get("properties").and_then(Value::as_object);
        let map_values = schema.get("additionalProperties").filter(|a| a.is_object());
        for (name, field) in fields {
            match (properties.and_then(|p| p.get(name)), map_values) {
                (Some(declared), _) => self.check(declared, field, &join(path, name)),
                (None, Some(values)) => self.check(values, field, &format!("{path}[{name}]")),
                (None, None) => {}
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations only, in a structural schema. An
    /// int-or-string's own `anyOf` of integer and string says what its type check already said.
    /// go-openapi reports these as composite errors, which the API server files under the root
    /// path with an empty value (`kubeOpenAPIResultToFieldErrors`, its `default` case), in
    /// kube-openapi's words (`pkg/validation/validate/schema_messages.go`).
    fn combinators(&mut self, schema: &Value, value: &Value, path: &str) {
        let patterns = self.patterns;
        let keeps = |branch: &Value| {
            let mut inner = Checker { patterns, found: Vec::new() };
            inner.check(branch, value, path);
            inner.found.is_empty()
        };
        let mut fail = |detail: String| {
            self.found.push(Violation { path: "<nil>".into(), kind: Kind::Invalid { value: "\"\"".into(), detail } });
        };
        let name = body_name(path);
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array)
            && !branches.iter().all(keeps)
        {
            fail(format!("{name:?} must validate all the schemas (allOf)"));
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array)
            && !branches.iter().any(keeps)
        {
            fail(format!("{name:?} must validate at least one schema (anyOf)"));
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array)
            && branches.iter().filter(|b| keeps(b)).count() != 1
        {
            fail(format!("{name:?} must validate one and only one schema (oneOf). "));
        }
        if let Some(branch) = schema.get("not")
            && keeps(branch)
        {
            fail(format!("{name:?} must not validate the schema (not)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["nodeName"], "properties": {
            "nodeName": {"type": "string", "maxLength": 8},
            "cpu": {"type": "integer", "minimum": 1},
            "memory": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}],
                       "pattern": "^[0-9]+(Gi|Mi)?$", "minimum": 0},
            "hugepages": {"type": "string", "enum": ["2Mi", "1Gi"]},
            "cells": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object", "properties": {"id": {"type": "integer"}, "cpu": {"type": "integer"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            "note": {"type": "string", "nullable": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}}})
    }

    fn messages(spec: Value) -> Vec<String> {
        let schema = host_schema();
        validate(&schema, &json!({"spec": spec}), &Patterns::of(&schema)).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_object_passes_with_integers_or_strings_where_both_are_allowed() {
        for memory in [json!(0), json!("64Gi")] {
            assert_eq!(
                messages(json!({"nodeName": "n", "cpu": 2, "memory": memory, "note": null})),
                Vec::<String>::new()
            );
        }
    }

    /// The messages a v1.32 API server gives for each (seen with `kubectl apply` of a CR whose
    /// CRD has these bounds; the forms are `field.Error.ErrorBody` over go-openapi's).
    #[test]
    fn each_broken_validation_is_reported_in_the_api_servers_words() {
        let cases = [
            (json!({}), "spec.nodeName: Required value"),
            (
                json!({"nodeName": "n", "cpu": "two"}),
                "spec.cpu: Invalid value: \"string\": spec.cpu in body must be of type integer: \"string\"",
            ),
            (
                json!({"nodeName": "n", "cpu": 0}),
                "spec.cpu: Invalid value: 0: spec.cpu in body should be greater than or equal to 1",
            ),
            (
                json!({"nodeName": "n", "memory": "1KB"}),
                "spec.memory: Invalid value: \"1KB\": spec.memory in body should match '^[0-9]+(Gi|Mi)?$'",
            ),
            (
                json!({"nodeName": "n", "memory": -1}),
                "spec.memory: Invalid value: -1: spec.memory in body should be greater than or equal to 0",
            ),
            (
                json!({"nodeName": "n", "hugepages": "4Mi"}),
                "spec.hugepages: Unsupported value: \"4Mi\": supported values: \"2Mi\", \"1Gi\"",
            ),
            (json!({"nodeName": "much-too-long"}), "spec.nodeName: Too long: may not be more than 8 bytes"),
            (
                json!({"nodeName": "n", "cells": [{"id": 1}, {"id": 2}, {"id": 3}]}),
                "spec.cells: Too many: 3: must have at most 2 items",
            ),
            (json!({"nodeName": "n", "cells": [{"id": 1}, {"id": 1}]}), "spec.cells[1]: Duplicate value: {\"id\":1}"),
            (json!({"nodeName": "n", "tags": ["a", "a"]}), "spec.tags[1]: Duplicate value: \"a\""),
            (
                json!({"nodeName": "n", "labels": {"k": "long"}}),
                "spec.labels[k]: Too long: may not be more than 3 bytes",
            ),
            (
                json!({"nodeName": null}),
                "spec.nodeName: Invalid value: \"null\": spec.nodeName in body must be of type string: \"null\"",
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(messages(spec.clone()), [expected], "{spec}");
        }
    }

    #[test]
    fn a_float_is_neither_an_integer_nor_a_string() {
        let found = messages(json!({"nodeName": "n", "memory": 1.5}));
        assert_eq!(
            found,
            ["spec.memory: Invalid value: \"number\": spec.memory in body must be of type integer,string: \"number\""]
        );
    }

    #[test]
    fn only_shape_errors_keep_the_rules_from_running() {
        let schema = host_schema();
        let patterns = Patterns::of(&schema);
        let blocking =
            |spec: Value| validate(&schema, &json!({"spec": spec}), &patterns).iter().any(Violation::blocks_rules);
        assert!(blocking(json!({})), "required");
        assert!(blocking(json!({"nodeName": "n", "cpu": "x"})), "type");
        assert!(!blocking(json!({"nodeName": "n", "cpu": 0})), "a bound");
        assert!(!blocking(json!({"nodeName": "n", "memory": "1KB"})), "a pattern");
    }

    #[test]
    fn unknown_fields_are_pruned_except_where_the_schema_keeps_them() {
        let mut object = json!({"apiVersion": "x/v1", "kind": "H", "metadata": {"name": "h", "labels": {"a": "b"}},
            "spec": {"nodeName": "n", "typo": 1, "cells": [{"id": 1, "cores": 2}], "labels": {"any": "v"},
                     "extra": {"free": {"form": true}},
                     "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {}}},
            "status": {"x": 1}});
        let unknown = prune(&host_schema(), &mut object);
        assert_eq!(unknown, ["spec.cells[0].cores", "spec.template.status", "spec.typo", "status"]);
        assert_eq!(
            object,
            json!({"apiVersion": "x/v1", "kind": "H", "metadata": {"name": "h", "labels": {"a": "b"}},
                "spec": {"nodeName": "n", "cells": [{"id": 1}], "labels": {"any": "v"}, "extra": {"free": {"form": true}},
                         "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
        );
    }

    #[test]
    fn combinators_hold_values_to_their_branches() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 2}], "not": {"enum": [1]}}
        }}}});
        let found = |size: i64| -> Vec<String> {
            validate(&schema, &json!({"spec": {"size": size}}), &Patterns::default())
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(found(12), Vec::<String>::new());
        assert_eq!(found(5), ["<nil>: Invalid value: \"\": \"spec.size\" must validate at least one schema (anyOf)"]);
        assert_eq!(found(1), ["<nil>: Invalid value: \"\": \"spec.size\" must not validate the schema (not)"]);
    }
}
