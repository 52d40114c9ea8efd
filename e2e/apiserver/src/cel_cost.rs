//! The API server's static cost estimate of a CRD's CEL rules, and its refusal of a CRD whose
//! rules could cost more than their budget: a real kube-apiserver refuses such a CRD at install
//! time (`kubectl apply -f crds/` fails), so the emulator must refuse it too.
//!
//! What is modelled, and where it comes from (Kubernetes v1.32.13: apiextensions-apiserver and
//! apiserver at v0.32.13, cel-go v0.22.0):
//! - The cost of one evaluation: cel-go `checker/cost.go` (`coster`, v0.22.0): an identifier
//!   or a field selection costs 1, `has()` nothing beyond its operand (Kubernetes turns the
//!   presence cost off), a constant 0, a list literal 10, `&&` and `||` the left side at least
//!   and both sides at most, `?:` the condition and the dearer branch, `in` the size of the
//!   list, equality (and the order of strings) a tenth of the smaller operand's size, string
//!   concatenation a tenth of the result's, list concatenation 1, a comprehension its range
//!   times its step and condition; any other function 1 plus its arguments. Kubernetes'
//!   libraries (`k8s.io/apiserver/pkg/cel/library/cost.go`) price `quantity()` and
//!   `isQuantity()` at a tenth of their argument's size, the quantity methods at 1, and list
//!   functions such as `sum()` at the list's size.
//! - Sizes: a string with `maxLength` n is taken to be 4n bytes long (a character may take four
//!   bytes in UTF-8); without it, as long as a whole request (3 MiB less its quotes). A list
//!   without `maxItems` holds as many of its smallest items as a request can carry
//!   (`k8s.io/apiserver/pkg/cel/common/schemas.go`, `SchemaDeclType`).
//! - How often a rule runs: the product of the `maxItems` and `maxProperties` of the lists and
//!   maps around it; where one of them is unbounded, as many times as the smallest value of the
//!   rule's node fits in a request (apiextensions-apiserver `pkg/apiserver/schema/cel`,
//!   `unboundedCardinality`, and `pkg/apis/apiextensions/validation/validation.go`,
//!   `getExpressionCost`).
//! - The budgets and the messages: `StaticEstimatedCostLimit` per rule and
//!   `StaticEstimatedCRDCostLimit` for the CRD, with `getCostErrorMessage`'s wording
//!   (apiextensions-apiserver `pkg/apis/apiextensions/validation/validation.go`).

use cel::IdedExpr;
use cel::common::ast::{Expr, LiteralValue, operators};
use serde_json::Value;
use std::collections::HashMap;

/// The most one rule may cost, evaluation cost times how often it can run
/// (`StaticEstimatedCostLimit`).
pub const RULE_COST_LIMIT: u64 = 10_000_000;
/// The most all the rules of one CRD may cost together (`StaticEstimatedCRDCostLimit`).
pub const CRD_COST_LIMIT: u64 = 100_000_000;
/// The largest request the API server accepts, which bounds unbounded lists and strings
/// (`k8s.io/apiserver/pkg/apis/cel/config.go`, `MaxRequestSizeBytes`).
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;

/// cel-go `common/cost.go`.
const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const SELECT_AND_IDENT_COST: u64 = 1;
const CONST_COST: u64 = 0;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;

/// The smallest JSON forms of values (`k8s.io/apiserver/pkg/cel/limits.go` and `types.go`):
/// `""`, `0`, `true`, `[]`, `{}`, and the sizes of durations, dates and date-times.
const MIN_STRING_SIZE: u64 = 2;
const MIN_NUMBER_SIZE: u64 = 1;
const MIN_BOOL_SIZE: u64 = 4;
const MIN_COLLECTION_SIZE: u64 = 2;
const MIN_DURATION_SIZE: u64 = 3;
const DATE_SIZE: u64 = 12;
const MIN_DATETIME_SIZE: u64 = 21;
const MAX_DURATION_SIZE: u64 = 32;
const MAX_DATETIME_SIZE: u64 = 32;

/// A range of costs or sizes, as cel-go's `CostEstimate` and `SizeEstimate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    const ZERO: Range = Range { min: 0, max: 0 };

    fn exactly(n: u64) -> Range {
        Range { min: n, max: n }
    }

    fn add(self, other: Range) -> Range {
        Range { min: self.min.saturating_add(other.min), max: self.max.saturating_add(other.max) }
    }

    fn union(self, other: Range) -> Range {
        Range { min: self.min.min(other.min), max: self.max.max(other.max) }
    }

    /// cel-go `MultiplyByCostFactor`: rounds up.
    fn times_factor(self, factor: f64) -> Range {
        let scale = |n: u64| {
            let scaled = (n as f64 * factor).ceil();
            if scaled >= u64::MAX as f64 { u64::MAX } else { scaled as u64 }
        };
        Range { min: scale(self.min), max: scale(self.max) }
    }

    /// cel-go `MultiplyByCost`: a size times a cost.
    fn times(self, cost: Range) -> Range {
        Range { min: self.min.saturating_mul(cost.min), max: self.max.saturating_mul(cost.max) }
    }
}

/// The type of a value as far as its cost matters, with its size.
#[derive(Debug, Clone)]
enum Ty<'a> {
    String,
    Scalar,
    Quantity,
    List(Box<Typed<'a>>),
    Map(Box<Typed<'a>>),
    Object(&'a Value),
    Dyn,
}

#[derive(Debug, Clone)]
struct Typed<'a> {
    ty: Ty<'a>,
    /// Bytes of a string, items of a list, entries of a map.
    size: Range,
}

impl<'a> Typed<'a> {
    /// A number or boolean read from the object: its size, as the API server's estimator
    /// gives every schema node, is its `MaxElements`, 0 for scalars.
    fn field() -> Typed<'a> {
        Typed { ty: Ty::Scalar, size: Range::ZERO }
    }

    /// A number or boolean a literal or a function gives: size 1 (cel-go `sizeEstimate`).
    fn computed() -> Typed<'a> {
        Typed { ty: Ty::Scalar, size: Range::exactly(1) }
    }

    fn of(ty: Ty<'a>) -> Typed<'a> {
        Typed { ty, size: Range::exactly(1) }
    }
}

fn max_u64(schema: &Value, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn schema_type(schema: &Value) -> &str {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int-or-string";
    }
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn map_values(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|v| v.is_object())
}

/// The smallest a value of this schema can be in JSON (`DeclType.MinSerializedSize`).
fn min_serialized_size(schema: &Value) -> u64 {
    match (schema_type(schema), schema.get("format").and_then(Value::as_str)) {
        ("string", Some("duration")) => MIN_DURATION_SIZE,
        ("string", Some("date")) => DATE_SIZE,
        ("string", Some("date-time")) => MIN_DATETIME_SIZE,
        ("string", _) => MIN_STRING_SIZE,
        ("boolean", _) => MIN_BOOL_SIZE,
        ("array", _) => MIN_COLLECTION_SIZE,
        // `{}` and, for each required field without a default, `"name":value,`.
        ("object", _) if map_values(schema).is_none() => {
            let properties = schema.get("properties");
            let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
            required
                .filter_map(Value::as_str)
                .filter_map(|name| Some((name, properties?.get(name)?)))
                .filter(|(_, property)| property.get("default").is_none())
                .fold(MIN_COLLECTION_SIZE, |sum, (name, property)| {
                    sum + name.len() as u64 + min_serialized_size(property) + 4
                })
        }
        ("object", _) => MIN_COLLECTION_SIZE,
        _ => MIN_NUMBER_SIZE,
    }
}

/// How many values of this schema a request could carry: the bound of an unbounded list.
fn per_request(min_size: u64) -> u64 {
    (MAX_REQUEST_SIZE_BYTES - MIN_COLLECTION_SIZE) / (min_size + 1)
}

/// The type of a schema node, with its size as the API server estimates it.
fn declared(schema: &Value) -> Typed<'_> {
    match schema_type(schema) {
        "string" => {
            let max = match (schema.get("format").and_then(Value::as_str), max_u64(schema, "maxLength")) {
                (Some("duration"), _) => MAX_DURATION_SIZE,
                (Some("date"), _) => DATE_SIZE,
                (Some("date-time"), _) => MAX_DATETIME_SIZE,
                (Some("byte"), Some(length)) => length,
                // A character may take four bytes.
                (_, Some(length)) => length.saturating_mul(4),
                (_, None) => match schema.get("enum").and_then(Value::as_array) {
                    Some(choices) => {
                        choices.iter().filter_map(Value::as_str).map(|c| c.len() as u64).max().unwrap_or(0)
                    }
                    None => MAX_REQUEST_SIZE_BYTES - MIN_STRING_SIZE,
                },
            };
            Typed { ty: Ty::String, size: Range { min: 0, max } }
        }
        "array" => {
            let items = schema.get("items").map(declared).unwrap_or_else(|| Typed::of(Ty::Dyn));
            let item_min = schema.get("items").map_or(MIN_NUMBER_SIZE, min_serialized_size);
            let max = max_u64(schema, "maxItems").unwrap_or_else(|| per_request(item_min));
            Typed { ty: Ty::List(Box::new(items)), size: Range { min: 0, max } }
        }
        "object" => match map_values(schema) {
            Some(values) => {
                // `estimateMaxAdditionalPropertiesFromMinSize`: an entry is at least `"":` and its
                // value and a comma.
                let per_entry = min_serialized_size(values) + 6;
                let max = max_u64(schema, "maxProperties")
                    .unwrap_or((MAX_REQUEST_SIZE_BYTES - MIN_COLLECTION_SIZE) / per_entry);
                Typed { ty: Ty::Map(Box::new(declared(values))), size: Range { min: 0, max } }
            }
            None => Typed::of(Ty::Object(schema)),
        },
        "int-or-string" => Typed { ty: Ty::Dyn, size: Range { min: 0, max: MAX_REQUEST_SIZE_BYTES - 2 } },
        _ => Typed::field(),
    }
}

/// One evaluation's cost estimate of a parsed rule, with `self` (and `oldSelf`) of `schema`.
struct Coster<'a> {
    variables: HashMap<String, Typed<'a>>,
}

impl<'a> Coster<'a> {
    fn cost(&mut self, expr: &IdedExpr) -> (Range, Typed<'a>) {
        match &expr.expr {
            Expr::Literal(literal) => (Range::exactly(CONST_COST), literal_type(literal)),
            Expr::Ident(name) => {
                let typed = self.variables.get(name).cloned().unwrap_or_else(|| Typed::of(Ty::Dyn));
                (Range::exactly(SELECT_AND_IDENT_COST), typed)
            }
            Expr::Select(select) => {
                let (cost, operand) = self.cost(&select.operand);
                // Kubernetes turns off cel-go's presence-test cost (`PresenceTestHasCost(false)`,
                // k8s.io/apiserver/pkg/cel/environment/base.go): `has(a.f)` costs what `a` does.
                if select.test {
                    return (cost, Typed::computed());
                }
                let cost = cost.add(Range::exactly(SELECT_AND_IDENT_COST));
                let field = match operand.ty {
                    Ty::Object(schema) => schema
                        .get("properties")
                        .and_then(|p| p.get(&select.field))
                        .map(declared)
                        .unwrap_or_else(|| Typed::of(Ty::Dyn)),
                    Ty::Map(values) => *values,
                    _ => Typed::of(Ty::Dyn),
                };
                (cost, field)
            }
            Expr::List(list) => {
                let mut cost = Range::exactly(LIST_CREATE_BASE_COST);
                let mut item = Typed::of(Ty::Dyn);
                for element in &list.elements {
                    let (element_cost, typed) = self.cost(element);
                    cost = cost.add(element_cost);
                    item = typed;
                }
                (cost, Typed { ty: Ty::List(Box::new(item)), size: Range::exactly(list.elements.len() as u64) })
            }
            Expr::Map(map) => {
                let mut cost = Range::exactly(MAP_CREATE_BASE_COST);
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(entry) = &entry.expr {
                        cost = cost.add(self.cost(&entry.key).0).add(self.cost(&entry.value).0);
                    }
                }
                (
                    cost,
                    Typed { ty: Ty::Map(Box::new(Typed::of(Ty::Dyn))), size: Range::exactly(map.entries.len() as u64) },
                )
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
            Expr::Comprehension(comprehension) => {
                let (range_cost, range) = self.cost(&comprehension.iter_range);
                let (init_cost, init) = self.cost(&comprehension.accu_init);
                let element = match &range.ty {
                    Ty::List(item) => (**item).clone(),
                    Ty::Map(_) => Typed { ty: Ty::String, size: Range { min: 0, max: MAX_REQUEST_SIZE_BYTES } },
                    _ => Typed::of(Ty::Dyn),
                };
                let shadowed_iter = self.variables.insert(comprehension.iter_var.clone(), element);
                // The accumulator grows to the range's size (a map() or filter() result).
                let accumulator = match init.ty {
                    Ty::List(item) => Typed { ty: Ty::List(item), size: range.size },
                    other => Typed { ty: other, size: init.size },
                };
                let shadowed_accu = self.variables.insert(comprehension.accu_var.clone(), accumulator);
                let (condition_cost, _) = self.cost(&comprehension.loop_cond);
                let (step_cost, _) = self.cost(&comprehension.loop_step);
                let (result_cost, result) = self.cost(&comprehension.result);
                restore(&mut self.variables, &comprehension.iter_var, shadowed_iter);
                restore(&mut self.variables, &comprehension.accu_var, shadowed_accu);
                let loops = range.size.times(step_cost.add(condition_cost));
                (range_cost.add(init_cost).add(result_cost).add(loops), result)
            }
            Expr::Struct(_) | Expr::Unspecified => (Range::exactly(1), Typed::of(Ty::Dyn)),
        }
    }

    fn call(&mut self, function: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> (Range, Typed<'a>) {
        let receiver = target.map(|t| self.cost(t));
        let arguments: Vec<(Range, Typed<'a>)> = args.iter().map(|a| self.cost(a)).collect();
        let argument_cost = arguments
            .iter()
            .map(|(cost, _)| *cost)
            .chain(receiver.as_ref().map(|(cost, _)| *cost))
            .fold(Range::ZERO, Range::add);
        let size = |i: usize| arguments.get(i).map_or(Range::ZERO, |(_, t)| t.size);
        let is_string = |i: usize| arguments.get(i).is_some_and(|(_, t)| matches!(t.ty, Ty::String));
        match (function, &receiver) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, None) if arguments.len() == 2 => {
                let (left, right) = (arguments[0].0, arguments[1].0);
                (Range { min: left.min, max: left.add(right).max }, Typed::computed())
            }
            (operators::CONDITIONAL, None) if arguments.len() == 3 => {
                let branch = arguments[1].0.union(arguments[2].0);
                let typed = Typed { ty: arguments[1].1.ty.clone(), size: size(1).union(size(2)) };
                (arguments[0].0.add(branch), typed)
            }
            (operators::IN, None) => (size(1).add(argument_cost), Typed::computed()),
            // Equality of anything, and order of strings: a tenth of the smaller size (0 when
            // that is 0, as for numbers read from the object).
            (operators::EQUALS | operators::NOT_EQUALS, None)
            | (operators::LESS | operators::LESS_EQUALS | operators::GREATER | operators::GREATER_EQUALS, None)
                if function == operators::EQUALS
                    || function == operators::NOT_EQUALS
                    || (is_string(0) && is_string(1)) =>
            {
                let smaller = size(0).max.min(size(1).max);
                let compare =
                    Range { min: u64::from(smaller > 0), max: smaller }.times_factor(STRING_TRAVERSAL_COST_FACTOR);
                (compare.add(argument_cost), Typed::computed())
            }
            (operators::ADD, None) if arguments.len() == 2 && matches!(arguments[0].1.ty, Ty::String) => {
                let joined = size(0).add(size(1));
                let typed = Typed { ty: Ty::String, size: joined };
                (joined.times_factor(STRING_TRAVERSAL_COST_FACTOR).add(argument_cost), typed)
            }
            // Lists join at a cost of 1; the result holds both.
            (operators::ADD, None) if arguments.len() == 2 && matches!(arguments[0].1.ty, Ty::List(_)) => {
                let typed = Typed { ty: arguments[0].1.ty.clone(), size: size(0).add(size(1)) };
                (Range::exactly(1).add(argument_cost), typed)
            }
            // `string()` of a value the checker cannot type (an int-or-string field) may take
            // any of its overloads, and cel-go prices it as the dearest, bytes to string: a
            // tenth of the argument's size, the result as long as the argument (v0.22
            // `checker/cost.go`, `costCall`'s union of overloads and `BytesToString`).
            ("string", None) if arguments.len() == 1 && matches!(arguments[0].1.ty, Ty::Dyn) => {
                let typed = Typed { ty: Ty::String, size: Range { min: size(0).min / 4, max: size(0).max } };
                (size(0).times_factor(STRING_TRAVERSAL_COST_FACTOR).add(argument_cost), typed)
            }
            // Kubernetes' quantity library: parsing is linear in the string.
            ("quantity" | "isQuantity", None) => {
                let parse = size(0).times_factor(STRING_TRAVERSAL_COST_FACTOR);
                let result = if function == "quantity" { Typed::of(Ty::Quantity) } else { Typed::computed() };
                (parse.add(argument_cost), result)
            }
            // Kubernetes' lists library: linear in the list.
            ("sum" | "min" | "max" | "indexOf" | "lastIndexOf" | "isSorted", Some((_, list))) => {
                let per_item = match &list.ty {
                    Ty::List(item) if matches!(item.ty, Ty::String) => {
                        Range::exactly(1).add(item.size.times_factor(STRING_TRAVERSAL_COST_FACTOR))
                    }
                    _ => Range::exactly(1),
                };
                (list.size.times(per_item).add(argument_cost), Typed::computed())
            }
            _ => (Range::exactly(1).add(argument_cost), Typed::of(Ty::Dyn)),
        }
    }
}

fn restore<'a>(variables: &mut HashMap<String, Typed<'a>>, name: &str, shadowed: Option<Typed<'a>>) {
    match shadowed {
        Some(previous) => variables.insert(name.to_string(), previous),
        None => variables.remove(name),
    };
}

fn literal_type<'a>(literal: &LiteralValue) -> Typed<'a> {
    match literal {
        LiteralValue::String(text) => Typed { ty: Ty::String, size: Range::exactly(text.chars().count() as u64) },
        LiteralValue::Bytes(bytes) => Typed { ty: Ty::String, size: Range::exactly(bytes.len() as u64) },
        _ => Typed::computed(),
    }
}

/// A rule's estimated cost: one evaluation, and that times how often it can run.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCost {
    /// Where the rule sits, as the API server names it.
    pub path: String,
    pub evaluation: u64,
    pub cardinality: u64,
    pub total: u64,
}

/// Why a CRD's rules are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub path: String,
    pub message: String,
}

/// The estimated cost of every rule of a schema (`openAPIV3Schema`), at the path the API
/// server gives it, or the rules that do not compile.
pub fn rule_costs(schema: &Value, root: &str) -> Result<Vec<RuleCost>, Vec<Refusal>> {
    let mut costs = Vec::new();
    let mut refusals = Vec::new();
    walk(schema, root, Some(1), &mut costs, &mut refusals);
    if refusals.is_empty() { Ok(costs) } else { Err(refusals) }
}

fn walk(schema: &Value, path: &str, cardinality: Option<u64>, costs: &mut Vec<RuleCost>, refusals: &mut Vec<Refusal>) {
    for (i, rule) in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let rule_path = format!("{path}.x-kubernetes-validations[{i}].rule");
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        let parsed = match cel::parser::Parser::new().parse(text) {
            Ok(parsed) => parsed,
            Err(error) => {
                refusals.push(Refusal { path: rule_path, message: format!("compilation failed: {error}") });
                continue;
            }
        };
        let self_type = declared(schema);
        let variables = HashMap::from([("self".to_string(), self_type.clone()), ("oldSelf".to_string(), self_type)]);
        let (evaluation, _) = Coster { variables }.cost(&parsed);
        // Under an unbounded list or map: as many of the node's smallest values as a request holds.
        let times = cardinality.unwrap_or_else(|| MAX_REQUEST_SIZE_BYTES / (min_serialized_size(schema) + 1));
        costs.push(RuleCost {
            path: rule_path,
            evaluation: evaluation.max,
            cardinality: times,
            total: evaluation.max.saturating_mul(times),
        });
    }
    for (name, child) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        walk(child, &format!("{path}.properties[{name}]"), cardinality, costs, refusals);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let times = cardinality.zip(max_u64(schema, "maxItems")).map(|(outer, n)| outer.saturating_mul(n));
        walk(items, &format!("{path}.items"), times, costs, refusals);
    }
    if let Some(values) = map_values(schema) {
        let times = cardinality.zip(max_u64(schema, "maxProperties")).map(|(outer, n)| outer.saturating_mul(n));
        walk(values, &format!("{path}.additionalProperties"), times, costs, refusals);
    }
}

/// `getCostErrorMessage`: how far over its budget a cost is.
pub fn cost_error_message(what: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

/// The refusals a real API server makes of a CRD's rules for their cost, in its words; none
/// when every rule is within its budget and all of them within the CRD's.
pub fn check_crd(crd: &Value) -> Vec<Refusal> {
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    let schemas: Vec<(String, &Value)> = match versions.as_slice() {
        // One version's schema is the CRD's schema (the API server's internal form hoists it to
        // `spec.validation`, and names errors so).
        [_] => crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema")
            .map(|s| vec![("spec.validation.openAPIV3Schema".to_string(), s)])
            .unwrap_or_default(),
        _ => (0..versions.len())
            .filter_map(|i| {
                let schema = crd.pointer(&format!("/spec/versions/{i}/schema/openAPIV3Schema"))?;
                Some((format!("spec.versions[{i}].schema.openAPIV3Schema"), schema))
            })
            .collect(),
    };
    let mut refusals = Vec::new();
    for (root, schema) in schemas {
        let costs = match rule_costs(schema, &root) {
            Ok(costs) => costs,
            Err(compile) => {
                refusals.extend(compile);
                continue;
            }
        };
        for rule in costs.iter().filter(|r| r.total > RULE_COST_LIMIT) {
            refusals.push(Refusal {
                path: rule.path.clone(),
                message: cost_error_message("estimated rule cost", rule.total, RULE_COST_LIMIT),
            });
        }
        let total = costs.iter().fold(0u64, |sum, r| sum.saturating_add(r.total));
        if total > CRD_COST_LIMIT {
            // `MostExpensive`: the four dearest rules among those costing a hundredth of the
            // limit or more.
            let mut dearest: Vec<&RuleCost> = costs.iter().filter(|r| r.total >= CRD_COST_LIMIT / 100).collect();
            dearest.sort_by_key(|r| std::cmp::Reverse(r.total));
            for rule in dearest.iter().take(4) {
                refusals.push(Refusal {
                    path: rule.path.clone(),
                    message:
                        "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"
                            .into(),
                });
            }
            refusals.push(Refusal {
                path: root.clone(),
                message: cost_error_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    total,
                    CRD_COST_LIMIT,
                ),
            });
        }
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd_of(kind: &str) -> Value {
        serde_json::to_value(catalyst_core::crd::of_kind(kind).unwrap()).unwrap()
    }

    #[test]
    fn the_unbounded_storage_list_is_refused_as_a_real_api_server_refuses_it() {
        // The ServiceGroup CRD as it was before its lists were bounded, when a size was a string
        // of at most 64 characters with a CEL rule: a v1.32 kube-apiserver refused it with
        // exactly this path and factor.
        let mut crd = crd_of("ServiceGroup");
        let storage = crd
            .pointer_mut(
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/template/properties/storage",
            )
            .unwrap();
        storage.as_object_mut().unwrap().remove("maxItems");
        storage["items"]["properties"]["size"] = json!({"type": "string", "maxLength": 64, "x-kubernetes-validations": [
            {"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))", "message": "must be a positive quantity such as 512Gi"}
        ]});
        assert_eq!(
            check_crd(&crd),
            [Refusal {
                path: "spec.validation.openAPIV3Schema.properties[spec].properties[template].properties[storage].items.properties[size].x-kubernetes-validations[0].rule".into(),
                message: "estimated rule cost exceeds budget by factor of 5.9x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)".into(),
            }]
        );
    }

    /// A real v1.32 API server refused this rule on an int-or-string quantity in a list of 16
    /// (`kubectl apply` of the CRD, Kubernetes v1.32 built from source): "estimated rule cost
    /// exceeds budget by factor of 2.0x". Each `string(self)` and each `==` with it, like each
    /// quantity parse, is priced at a tenth of a whole request.
    #[test]
    fn string_of_an_int_or_string_is_priced_as_a_real_api_server_prices_it() {
        let rule = "self == string(self) ? isQuantity(self) && quantity(self).isGreaterThan(quantity('0')) : self > 0";
        let crd = json!({"metadata": {"name": "cells.example.com"}, "spec": {"versions": [{"name": "v1",
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"cells": {
                "type": "array", "maxItems": 16, "items": {"type": "object", "properties": {"memory": {
                    "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-validations": [{"rule": rule}]
                }}}
            }}}}
        }]}});
        let refusals = check_crd(&crd);
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(
            refusals[0].message.starts_with("estimated rule cost exceeds budget by factor of 2.0x"),
            "{refusals:?}"
        );
    }

    #[test]
    fn the_catalyst_crds_are_within_every_budget() {
        for kind in ["CatalystHost", "CatalystVM", "ServiceGroup"] {
            assert_eq!(check_crd(&crd_of(kind)), [], "{kind}");
        }
    }

    #[test]
    fn the_quantity_rule_costs_what_the_api_server_estimates() {
        // isQuantity(self) && quantity(self).isGreaterThan(quantity('0')) on a string of at most
        // 64 characters (256 bytes): 1 + 26, then 1 + 26, 0 + 1 and 1.
        let schema = json!({"type": "object", "properties": {"size": {
            "type": "string", "maxLength": 64,
            "x-kubernetes-validations": [{"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))"}]
        }}});
        let costs = rule_costs(&schema, "s").unwrap();
        assert_eq!(costs[0].evaluation, 56);
        assert_eq!(costs[0].cardinality, 1, "not under a list");
    }

    #[test]
    fn a_comprehension_costs_its_range_times_its_step() {
        // !has(self.numa) || self.numa.map(c, c.cpu).sum() <= self.capacity.cpu, 16 cells:
        // !has: 1 + 1; map: 2 (range) + 10 ([]) + 1 (result) + 16 x (1 + 1 + 10 + 2) = 237;
        // sum: 237 + 16; the comparison: 1 + 253 + 3; the ||: 2 + 257.
        let rule = "!has(self.numa) || self.numa.map(c, c.cpu).sum() <= self.capacity.cpu";
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": rule}], "properties": {
            "numa": {"type": "array", "maxItems": 16, "items": {"type": "object", "properties": {"cpu": {"type": "integer"}}}},
            "capacity": {"type": "object", "properties": {"cpu": {"type": "integer"}}}
        }});
        assert_eq!(rule_costs(&schema, "s").unwrap()[0].evaluation, 259);
    }

    #[test]
    fn a_rule_runs_as_often_as_the_lists_around_it_allow() {
        let rule = json!([{"rule": "self >= 1"}]);
        let schema = json!({"type": "object", "properties": {
            "cells": {"type": "array", "maxItems": 16, "items": {"type": "object", "properties": {
                "cpu": {"type": "integer", "x-kubernetes-validations": rule},
                "tags": {"type": "object", "maxProperties": 4, "additionalProperties": {
                    "type": "integer", "x-kubernetes-validations": rule}}
            }}},
            "open": {"type": "array", "items": {"type": "integer", "x-kubernetes-validations": rule}}
        }});
        let costs: Vec<(String, u64)> =
            rule_costs(&schema, "s").unwrap().into_iter().map(|r| (r.path, r.cardinality)).collect();
        assert_eq!(
            costs,
            [
                ("s.properties[cells].items.properties[cpu].x-kubernetes-validations[0].rule".to_string(), 16),
                (
                    "s.properties[cells].items.properties[tags].additionalProperties.x-kubernetes-validations[0].rule"
                        .to_string(),
                    64
                ),
                // Unbounded: 3 MiB of `0,`.
                ("s.properties[open].items.x-kubernetes-validations[0].rule".to_string(), 1_572_864),
            ]
        );
    }

    #[test]
    fn rules_within_their_own_budget_are_refused_together_past_the_crds() {
        // `self >= 1` costs 2 per evaluation; under 4,000,000 list items, 8,000,000 a rule.
        let rule = json!({"rule": "self >= 1"});
        let properties: serde_json::Map<String, Value> = (0..13)
            .map(|i| (format!("f{i:02}"), json!({"type": "integer", "x-kubernetes-validations": [rule]})))
            .collect();
        let crd = json!({"metadata": {"name": "things.example.com"}, "spec": {"versions": [{"name": "v1", "schema": {
            "openAPIV3Schema": {"type": "object", "properties": {"list": {"type": "array", "maxItems": 4_000_000,
                "items": {"type": "object", "properties": properties}}}}
        }}]}});
        let refusals = check_crd(&crd);
        assert_eq!(refusals.len(), 5, "{refusals:?}");
        assert!(refusals[..4].iter().all(|r| r.message.starts_with("contributed to estimated rule")));
        assert_eq!(refusals[4].path, "spec.validation.openAPIV3Schema");
        assert!(
            refusals[4].message.starts_with(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1.040000x"
            ),
            "{refusals:?}"
        );
    }

    #[test]
    fn the_message_says_how_far_over_budget_a_cost_is() {
        let message = |cost| cost_error_message("estimated rule cost", cost, RULE_COST_LIMIT);
        assert!(message(58_720_256).contains("by factor of 5.9x ("));
        assert!(message(12_000_000).contains("by factor of 1.200000x ("));
        assert!(message(2_000_000_000).contains("by factor of more than 100x ("));
    }

    #[test]
    fn a_rule_that_does_not_parse_is_refused() {
        let schema = json!({"type": "integer", "x-kubernetes-validations": [{"rule": "self >="}]});
        let refusals = rule_costs(&schema, "s").unwrap_err();
        assert_eq!(refusals[0].path, "s.x-kubernetes-validations[0].rule");
        assert!(refusals[0].message.starts_with("compilation failed"), "{refusals:?}");
    }
}
