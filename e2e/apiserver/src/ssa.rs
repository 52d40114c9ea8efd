//! Server-side apply and managed-fields tracking, as kube-apiserver v1.32 does them: the
//! field manager of k8s.io/apimachinery/pkg/util/managedfields/internal (cited below as
//! `internal/<file>`) over sigs.k8s.io/structured-merge-diff v4.4.2 (cited as `smd/<dir>/<file>`),
//! both as vendored in kubernetes v1.32. Pure: JSON in, JSON out, no I/O and no locking.
//!
//! [`apply`] merges an applied configuration into the live object, detects conflicts with the
//! other managers, removes what the applier stopped applying and records its `Apply` entry;
//! [`update`] records which manager changed which fields on any other write (create, PUT, merge
//! or JSON patch). Both return the object with `metadata.managedFields` as the API server stores
//! it.
//!
//! The object's schema is the CRD's `openAPIV3Schema` when there is one (properties, items,
//! additionalProperties, `x-kubernetes-list-type` set/map with `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, `x-kubernetes-preserve-unknown-fields`), and for `metadata` always
//! ObjectMeta's (labels, annotations, finalizers as a set, ownerReferences keyed by uid).
//!
//! Left out, or different from the real API server:
//! - Without a schema (the built-in kinds here have none) every object key is a named struct
//!   field and every list is atomic, where the real built-in schemas make e.g. containers a list
//!   keyed by name: such lists are owned and replaced whole.
//! - No conversion between versions: managers that wrote another apiVersion are compared on the
//!   same JSON (`smd/merge/update.go` converts the objects to each manager's version first).
//! - Values are not validated against the schema's types; only what the typed conversion needs to
//!   build list keys is checked (missing keys, duplicates, nulls, kinds of set items).
//! - No `kubectl.kubernetes.io/last-applied-configuration` handling
//!   (`internal/lastappliedmanager.go`, `internal/lastappliedupdater.go`), no reconciliation of
//!   managed fields after a schema changes a field between atomic and granular
//!   (`smd/merge/update.go` reconcileManagedFieldsWithSchemaChanges), no defaulting after apply.
//! - The object is not reset here: the caller resets what its strategy resets (`status` on the
//!   main resource, everything but `status` on `/status`) and restores the system metadata, as
//!   the registry does after the field manager ran; ownership already excludes the reset fields.
//! - A create starts from `{}` where the API server starts from the kind's empty Go object, so
//!   an `Update` entry also owns the containers it added (`"f:spec":{".":{},…}`), as it does for
//!   custom resources.
//! - Left to the caller: an apply needs a `fieldManager` and the endpoint's apiVersion and kind
//!   (`internal/versioncheck.go`); `/status` writes need a live object.
//! - Times compare as strings (right for metav1.Time's `…Z` form); path elements and printed
//!   managers use serde_json's escaping where Go escapes `<>&` and quotes with `%q`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Who writes, and how (the caller resolves the manager name; see [`manager_from_user_agent`]).
pub struct Write<'a> {
    /// The `fieldManager` (`unknown` when empty, `internal/buildmanagerinfo.go`).
    pub manager: &'a str,
    /// The apiVersion of the request, recorded in the entry.
    pub api_version: &'a str,
    /// The entry's `time` (RFC 3339, UTC, as metav1.Time serialises).
    pub time: &'a str,
    /// `Some("status")` for a write to the status subresource.
    pub subresource: Option<&'a str>,
    /// The CRD's `openAPIV3Schema` for this version, if any.
    pub schema: Option<&'a Value>,
    /// The strategy's reset fields (`GetResetFields`), paths of field names: no manager owns them
    /// through this endpoint (`smd/merge/update.go` IgnoreFilter, a recursive difference).
    pub reset_fields: &'a [&'a [&'a str]],
}

/// The reset fields of a custom resource's strategies, kubernetes v1.32
/// apiextensions-apiserver/pkg/registry/customresource: `strategy.go` GetResetFields resets
/// `status` when the CRD has a status subresource, `status_strategy.go` resets `spec` (only: a
/// status write still owns the metadata it changes, though the strategy then discards it).
pub fn custom_resource_reset_fields(
    subresource: Option<&str>,
    status_subresource: bool,
) -> &'static [&'static [&'static str]] {
    match subresource {
        Some("status") => &[&["spec"]],
        None if status_subresource => &[&["status"]],
        _ => &[],
    }
}

/// The manager of a write without `fieldManager`: the User-Agent up to its first `/`, without
/// non-printable characters, cut at 128 bytes (apiserver/pkg/endpoints/handlers/create.go
/// prefixFromUserAgent, FieldManagerMaxLength). Go's unicode.IsPrint is approximated as "not a
/// control character, and no whitespace but the ASCII space".
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut manager = String::new();
    for c in prefix.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if manager.len() + c.len_utf8() > 128 {
            break;
        }
        manager.push(c);
    }
    manager
}

/// The fields `object` names, in FieldsV1 form, without the ones no manager ever owns
/// (`smd/typed/tofieldset.go`, then `internal/stripmeta.go`).
pub fn fields_v1(object: &Value, schema: Option<&Value>) -> Value {
    strip(&field_set(object, Ty::Root(schema))).to_fields_v1()
}

/// Server-side apply of `applied` by `write.manager` onto `live` (`None`: the apply creates the
/// object). Returns the object to store, with `metadata.managedFields`; when nothing but the
/// managed fields changed it equals `live` there, as the API server returns the live object.
pub fn apply(live: Option<&Value>, applied: &Value, write: &Write, force: bool) -> Result<Value, Error> {
    let ty = Ty::Root(write.schema);
    if !applied.is_object() {
        return Err(Error::BadRequest("error decoding YAML: the applied configuration is not an object".into()));
    }
    // internal/structuredmerge.go Apply: the configuration may not carry managed fields.
    if read_entries(applied).is_some() {
        return Err(Error::BadRequest("metadata.managedFields must be nil".into()));
    }
    // internal/structuredmerge.go: no duplicates in the configuration, duplicates allowed live.
    check(applied, ty, false)
        .map_err(|e| Error::Internal(format!("failed to create typed patch object ({}): {e}", gvknn(applied))))?;
    let mut live = live.cloned().unwrap_or_else(|| json!({}));
    let stored = read_entries(&live);
    remove_managed_fields(&mut live);
    check(&live, ty, true)
        .map_err(|e| Error::Internal(format!("failed to create typed live object ({}): {e}", gvknn(&live))))?;
    // internal/fieldmanager.go Apply decodes the live object's entries.
    let mut managed = decode(&stored.unwrap_or_default())
        .map_err(|e| Error::Internal(format!("failed to decode managed fields: {e}")))?;
    // internal/skipnonapplied.go Apply: an object nobody tracked yet is first owned, as it is, by
    // an update from the empty object by "before-first-apply" (so applying a different value
    // conflicts with it).
    if managed.is_empty() {
        let id = write.id("before-first-apply", Operation::Update);
        record_update(&mut managed, &json!({}), &live, id, write);
        cap_update_managers(&mut managed);
    }
    let id = write.id(write.manager, Operation::Apply);
    let reset = write.reset();
    // smd/merge/update.go Apply: the applier's set becomes exactly the configuration's set,
    // without the reset fields (IgnoreFilter); the metadata no one owns is stripped only after the
    // merge (internal/stripmeta.go wraps the updater), so `metadata.name` keeps `metadata` from
    // being pruned.
    let set = field_set(applied, ty).recursive_difference(&reset);
    let previous = managed.remove(&id);
    let last = previous.as_ref().map(|p| p.set.clone()).unwrap_or_default();
    let time = previous.and_then(|p| p.time);
    managed.insert(id.clone(), Owned { set, api_version: write.api_version.into(), time });
    let mut merged = merge(Some(&live), Some(applied), ty).unwrap_or_else(|| json!({}));
    // smd/merge/update.go prune: drop what the applier applied last time, no longer applies,
    // and no manager (the applier's new set included) owns.
    if !last.is_empty() {
        let all = managed.values().fold(Set::default(), |mut all, owned| {
            all.union(&owned.set);
            all
        });
        prune(&mut merged, ty, &last, Some(&all), false, false);
    }
    // smd/merge/update.go update: what the apply adds or modifies and another manager owns is a
    // conflict; with force it moves to the applier. Removed fields leave every other set.
    let comparison = compare(&live, &merged, ty).without(&reset);
    let changed = comparison.changed();
    let conflicts: Vec<(Id, Set)> = managed
        .iter()
        .filter(|(other, _)| **other != id)
        .map(|(other, owned)| (other.clone(), owned.set.intersection(&changed)))
        .filter(|(_, set)| !set.is_empty())
        .collect();
    if !force && !conflicts.is_empty() {
        return Err(Error::Conflict(Conflicts::new(&conflicts)));
    }
    for (other, owned) in managed.iter_mut() {
        owned.set = if *other == id {
            strip(&owned.set)
        } else {
            owned.set.difference(&changed).difference(&comparison.removed)
        };
    }
    managed.retain(|_, owned| !owned.set.is_empty());
    // internal/managedfieldsupdater.go Apply: the entry's time moves only when the object changed.
    if merged != live
        && let Some(owned) = managed.get_mut(&id)
    {
        owned.time = Some(write.time.into());
    }
    encode(&mut merged, &managed);
    Ok(merged)
}

/// Records a non-apply write (`operation: Update`) from `old` (`None`: a create) to `new`, and
/// returns `new` with `metadata.managedFields` (internal/fieldmanager.go Update, UpdateNoErrors).
pub fn update(old: Option<&Value>, mut new: Value, write: &Write) -> Value {
    let ty = Ty::Root(write.schema);
    if !new.is_object() {
        return new;
    }
    let mut old = old.cloned().unwrap_or_else(|| json!({}));
    let stored = read_entries(&old);
    remove_managed_fields(&mut old);
    let live_managed = || stored.as_deref().and_then(|e| decode(e).ok()).unwrap_or_default();
    // internal/fieldmanager.go decodeLiveOrNew: a subresource write keeps the live entries; else
    // `managedFields: []` or `[{}]` resets them, entries that decode and are not empty replace
    // them, and anything else (absent, invalid) keeps the live ones.
    let requested = read_entries(&new);
    let mut managed = match requested {
        _ if write.subresource.is_some() => live_managed(),
        Some(entries) if is_reset(&entries) => Managed::new(),
        Some(entries) => decode(&entries).ok().filter(|m| !m.is_empty()).unwrap_or_else(live_managed),
        None => live_managed(),
    };
    remove_managed_fields(&mut new);
    // UpdateNoErrors: if either object cannot be typed, the managed fields are dropped.
    if check(&old, ty, true).is_err() || check(&new, ty, true).is_err() {
        return new;
    }
    // internal/skipnonapplied.go Update: an existing object without managed fields stays
    // untracked; a create (no uid yet) is tracked.
    if managed.is_empty() && old["metadata"]["uid"].as_str().is_some_and(|uid| !uid.is_empty()) {
        return new;
    }
    record_update(&mut managed, &old, &new, write.id(write.manager, Operation::Update), write);
    cap_update_managers(&mut managed);
    encode(&mut new, &managed);
    new
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why an apply failed, with the status the API server answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// 409 Conflict (internal/conflict.go NewConflictError).
    Conflict(Conflicts),
    /// 400 BadRequest.
    BadRequest(String),
    /// 500, a plain error the API server reports without a reason (responsewriters/status.go).
    Internal(String),
}

impl Error {
    pub fn code(&self) -> u16 {
        match self {
            Error::Conflict(_) => 409,
            Error::BadRequest(_) => 400,
            Error::Internal(_) => 500,
        }
    }

    /// The metav1.Status body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "code": self.code(),
        });
        match self {
            Error::Conflict(conflicts) => {
                status["reason"] = json!("Conflict");
                status["details"] = json!({ "causes": conflicts.causes() });
            }
            Error::BadRequest(_) => status["reason"] = json!("BadRequest"),
            Error::Internal(_) => {}
        }
        status
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Conflict(conflicts) => conflicts.fmt(f),
            Error::BadRequest(message) | Error::Internal(message) => f.write_str(message),
        }
    }
}

/// Apply conflicts: (manager as printed, field path), grouped by manager in identifier order and
/// by path in set order (smd/merge/conflict.go ConflictsFromManagers, smd/fieldpath/set.go
/// Iterate).
#[derive(Debug, Clone, PartialEq)]
pub struct Conflicts(Vec<(String, String)>);

impl Conflicts {
    fn new(sets: &[(Id, Set)]) -> Self {
        let mut conflicts = Vec::new();
        for (id, set) in sets {
            let mut paths = Vec::new();
            set.iterate("", &mut paths);
            conflicts.extend(paths.into_iter().map(|path| (id.printed(), path)));
        }
        Conflicts(conflicts)
    }

    /// `details.causes` (internal/conflict.go NewConflictError).
    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|(manager, path)| {
                json!({ "reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path })
            })
            .collect()
    }
}

/// The message (internal/conflict.go getConflictMessage).
impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(manager, path)] = self.0.as_slice() {
            return write!(f, "Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        write!(f, "Apply failed with {} conflicts: ", self.0.len())?;
        let mut lines = Vec::new();
        for (i, (manager, path)) in self.0.iter().enumerate() {
            if i == 0 || self.0[i - 1].0 != *manager {
                lines.push(format!("conflicts with {manager}:"));
            }
            lines.push(format!("- {path}"));
        }
        f.write_str(&lines.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Types: what the schema says about each node

/// The type of a node (kube-openapi pkg/schemaconv/openapi.go turns a CRD schema into SMD types).
#[derive(Clone, Copy)]
enum Ty<'a> {
    /// The object: `metadata` is ObjectMeta, the rest follows the CRD schema if there is one.
    Root(Option<&'a Value>),
    /// No schema: a struct whose every key is a named field, lists atomic (see the module docs).
    Open,
    /// `__untyped_deduced_` (schemaconv/smd.go): granular maps of unnamed keys, atomic lists; what
    /// preserve-unknown-fields, `additionalProperties: true` or no properties give unknown keys.
    Deduced,
    /// `__untyped_atomic_`: the items of an array schema without `items`.
    Atomic,
    /// An OpenAPI v3 node, and whether an ancestor preserves unknown fields.
    Schema(&'a Value, bool),
}

/// A granular list: `x-kubernetes-list-type: set`, or `map` with its keys (schemaconv/smd.go
/// getListElementRelationship; no list type means atomic).
enum Assoc<'a> {
    Set,
    Map(Vec<&'a str>),
}

impl<'a> Ty<'a> {
    fn map_atomic(self) -> bool {
        match self {
            Ty::Atomic => true,
            // schemaconv/smd.go getMapElementRelationship.
            Ty::Schema(s, _) => s["x-kubernetes-map-type"] == "atomic",
            _ => false,
        }
    }

    /// The type of a map's key, and whether it is a named (struct) field.
    fn field(self, key: &str) -> (Ty<'a>, bool) {
        match self {
            Ty::Root(_) if key == "metadata" => (Ty::Schema(object_meta(), false), true),
            Ty::Root(Some(schema)) if key != "apiVersion" && key != "kind" => Ty::Schema(schema, false).field(key),
            Ty::Root(_) | Ty::Open => (Ty::Open, true),
            Ty::Deduced => (Ty::Deduced, false),
            Ty::Atomic => (Ty::Atomic, false),
            Ty::Schema(s, inherited) => {
                // schemaconv/openapi.go parseObject: properties are named fields; other keys take
                // additionalProperties' schema, else are deduced (an undeclared key is an error
                // upstream, tolerated here).
                let preserve = preserves(s, inherited);
                if let Some(property) = s["properties"].get(key) {
                    return (Ty::Schema(property, preserve), true);
                }
                match &s["additionalProperties"] {
                    additional @ Value::Object(_) => (Ty::Schema(additional, preserve), false),
                    _ => (Ty::Deduced, false),
                }
            }
        }
    }

    /// How a list is merged (`None`: atomic), and its items' type.
    fn list(self) -> (Option<Assoc<'a>>, Ty<'a>) {
        let Ty::Schema(s, inherited) = self else {
            return (None, Ty::Atomic);
        };
        let item = match &s["items"] {
            items @ Value::Object(_) => Ty::Schema(items, preserves(s, inherited)),
            _ => Ty::Atomic,
        };
        let assoc = match s["x-kubernetes-list-type"].as_str() {
            Some("set") => Some(Assoc::Set),
            Some("map") => {
                let keys: Option<Vec<&str>> =
                    s["x-kubernetes-list-map-keys"].as_array().and_then(|k| k.iter().map(Value::as_str).collect());
                // smd/typed/helpers.go: an associative list without keys is a set.
                keys.map(|keys| if keys.is_empty() { Assoc::Set } else { Assoc::Map(keys) })
            }
            _ => None,
        };
        (assoc, item)
    }

    /// A key field's schema default (smd/typed/helpers.go getAssociativeKeyDefault).
    fn default_of(self, key: &str) -> Option<&'a Value> {
        match self {
            Ty::Schema(s, _) => s["properties"][key].get("default").filter(|d| !d.is_null()),
            _ => None,
        }
    }
}

/// `x-kubernetes-preserve-unknown-fields` holds for the node and all below it
/// (schemaconv/openapi.go visitSpec).
fn preserves(schema: &Value, inherited: bool) -> bool {
    inherited || schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// ObjectMeta's merge behaviour (apimachinery/pkg/apis/meta/v1/types.go: finalizers
/// `+listType=set`, ownerReferences `+listType=map +listMapKey=uid` of a `+structType=atomic`).
fn object_meta() -> &'static Value {
    static OBJECT_META: OnceLock<Value> = OnceLock::new();
    OBJECT_META.get_or_init(|| {
        let mut properties: Map<String, Value> = [
            "name",
            "generateName",
            "namespace",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ]
        .into_iter()
        .map(|name| (name.to_string(), json!({})))
        .collect();
        for map in ["labels", "annotations"] {
            properties.insert(map.into(), json!({ "type": "object", "additionalProperties": { "type": "string" } }));
        }
        properties.insert(
            "finalizers".into(),
            json!({ "type": "array", "items": { "type": "string" }, "x-kubernetes-list-type": "set" }),
        );
        properties.insert(
            "ownerReferences".into(),
            json!({
                "type": "array",
                "items": { "type": "object", "x-kubernetes-map-type": "atomic" },
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
            }),
        );
        json!({ "type": "object", "properties": properties })
    })
}

/// How a walker sees a value of a type.
#[derive(Clone, Copy)]
enum Shape<'v> {
    Absent,
    Null,
    /// A scalar, or an atomic map or list.
    Leaf,
    Map(&'v Map<String, Value>),
    List(&'v [Value]),
}

impl<'v> Shape<'v> {
    fn of(value: Option<&'v Value>, ty: Ty) -> Self {
        match value {
            None => Shape::Absent,
            Some(Value::Null) => Shape::Null,
            Some(Value::Object(map)) if !ty.map_atomic() => Shape::Map(map),
            Some(Value::Array(list)) if ty.list().0.is_some() => Shape::List(list),
            Some(_) => Shape::Leaf,
        }
    }

    /// Absent, null or an empty container: both sides empty make a leaf ("emptyPromoteToLeaf"
    /// in smd/typed/merge.go and compare.go, to keep null apart from empty).
    fn is_empty(self) -> bool {
        match self {
            Shape::Absent | Shape::Null => true,
            Shape::Map(map) => map.is_empty(),
            Shape::List(list) => list.is_empty(),
            Shape::Leaf => false,
        }
    }

    fn is_granular(self) -> bool {
        matches!(self, Shape::Map(_) | Shape::List(_))
    }

    /// Whether both can be walked as one container: null is a valid empty map or list
    /// (smd/typed/helpers.go mapValue, listValue).
    fn compatible(self, other: Shape) -> bool {
        matches!(
            (self, other),
            (Shape::Absent | Shape::Null, _)
                | (_, Shape::Absent | Shape::Null)
                | (Shape::Map(_), Shape::Map(_))
                | (Shape::List(_), Shape::List(_))
        )
    }

    fn map(self) -> Option<&'v Map<String, Value>> {
        match self {
            Shape::Map(map) => Some(map),
            _ => None,
        }
    }

    fn list(self) -> &'v [Value] {
        match self {
            Shape::List(list) => list,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field sets (smd/fieldpath/set.go), path elements serialised as in FieldsV1
// (smd/fieldpath/serialize-pe.go): `f:<name>`, `k:<json object of the keys>`, `v:<json>`, `i:<n>`.

#[derive(Clone, Debug, Default, PartialEq)]
struct Set {
    members: BTreeSet<String>,
    children: BTreeMap<String, Set>,
}

impl Set {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    fn insert(&mut self, path: &[String]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    fn union(&mut self, other: &Set) {
        self.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            self.children.entry(pe.clone()).or_default().union(child);
        }
    }

    /// Paths in self and not in other; a parent minus its child is still the parent.
    fn difference(&self, other: &Set) -> Set {
        self.combine(other, |pe, child| match other.children.get(pe) {
            Some(o) => child.difference(o),
            None => child.clone(),
        })
    }

    /// Like difference, but a path in other also takes away everything below it.
    fn recursive_difference(&self, other: &Set) -> Set {
        self.combine(other, |pe, child| match other.children.get(pe) {
            _ if other.members.contains(pe) => Set::default(),
            Some(o) => child.recursive_difference(o),
            None => child.clone(),
        })
    }

    fn intersection(&self, other: &Set) -> Set {
        Set {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(pe, child)| Some((pe.clone(), child.intersection(other.children.get(pe)?))))
                .filter(|(_, child)| !child.is_empty())
                .collect(),
        }
    }

    fn combine(&self, other: &Set, child: impl Fn(&String, &Set) -> Set) -> Set {
        Set {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .map(|(pe, c)| (pe.clone(), child(pe, c)))
                .filter(|(_, c)| !c.is_empty())
                .collect(),
        }
    }

    /// Paths as printed (`.spec.ports[port=80]`): members first, then each child's
    /// (smd/fieldpath/set.go Iterate, path.go String).
    fn iterate(&self, prefix: &str, out: &mut Vec<String>) {
        out.extend(self.members.iter().map(|pe| format!("{prefix}{}", display_pe(pe))));
        for (pe, child) in &self.children {
            child.iterate(&format!("{prefix}{}", display_pe(pe)), out);
        }
    }

    /// smd/fieldpath/serialize.go ToJSON: a member is `{}`, a member with children has `".":{}`.
    fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for pe in &self.members {
            out.insert(pe.clone(), json!({}));
        }
        for (pe, child) in &self.children {
            let mut node = child.to_fields_v1();
            if self.members.contains(pe)
                && let Value::Object(node) = &mut node
            {
                node.insert(".".into(), json!({}));
            }
            out.insert(pe.clone(), node);
        }
        Value::Object(out)
    }

    /// smd/fieldpath/serialize.go FromJSON (readIterV1): a key without children, or with
    /// `"."`, is a member; keys of unknown types are dropped.
    fn from_fields_v1(fields: &Value) -> Result<Set, String> {
        let Value::Object(map) = fields else {
            return Err(format!("expected an object, got {fields}"));
        };
        let mut set = Set::default();
        for (key, child) in map {
            if key == "." {
                continue;
            }
            let Some(pe) = parse_pe(key)? else { continue };
            let grandchildren = Set::from_fields_v1(child)?;
            if grandchildren.is_empty() || child.get(".").is_some() {
                set.members.insert(pe.clone());
            }
            if !grandchildren.is_empty() {
                set.children.insert(pe, grandchildren);
            }
        }
        Ok(set)
    }
}

fn field_pe(name: &str) -> String {
    format!("f:{name}")
}

/// A FieldsV1 key in canonical form (smd/fieldpath/serialize-pe.go DeserializePathElement);
/// `None` for a type this version does not know.
fn parse_pe(key: &str) -> Result<Option<String>, String> {
    let bytes = key.as_bytes();
    if bytes.len() < 2 {
        return Err(format!("key must be 2 characters long: {key}"));
    }
    if bytes[1] != b':' {
        return Err(format!("missing colon: {key}"));
    }
    let body = &key[2..];
    let invalid = |e: serde_json::Error| format!("{key}: {e}");
    Ok(Some(match bytes[0] {
        b'f' => key.to_string(),
        b'v' => format!("v:{}", serde_json::from_str::<Value>(body).map_err(invalid)?),
        b'k' => format!("k:{}", Value::Object(serde_json::from_str(body).map_err(invalid)?)),
        b'i' => format!("i:{}", body.parse::<i64>().map_err(|e| format!("{key}: {e}"))?),
        _ => return Ok(None),
    }))
}

/// smd/fieldpath/element.go String: `.name`, `[k=v,…]`, `[=v]`, `[n]`.
fn display_pe(pe: &str) -> String {
    let (Some(kind), Some(body)) = (pe.get(..2), pe.get(2..)) else {
        return pe.to_string();
    };
    match kind {
        "f:" => format!(".{body}"),
        "k:" => match serde_json::from_str::<Map<String, Value>>(body) {
            Ok(keys) => {
                format!(
                    "[{}]",
                    keys.iter().map(|(k, v)| format!("{k}={}", display_value(v))).collect::<Vec<_>>().join(",")
                )
            }
            Err(_) => pe.to_string(),
        },
        "v:" => match serde_json::from_str::<Value>(body) {
            Ok(value) => format!("[={}]", display_value(&value)),
            Err(_) => pe.to_string(),
        },
        "i:" => format!("[{body}]"),
        _ => pe.to_string(),
    }
}

/// smd/value/value.go ToString.
fn display_value(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(display_value).collect::<Vec<_>>().join(",")),
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", display_value(v))).collect(),
        scalar => scalar.to_string(),
    }
}

/// The path element of a granular list's item (smd/typed/helpers.go listItemToPathElement).
fn item_pe(item: &Value, assoc: &Assoc, item_ty: Ty) -> Result<String, String> {
    match (assoc, item) {
        (Assoc::Map(_), Value::Null) => Err("associative list with keys may not have a null element".into()),
        (Assoc::Map(keys), Value::Object(fields)) => {
            let mut key = Map::new();
            for name in keys {
                let value = fields.get(*name).or_else(|| item_ty.default_of(name)).ok_or_else(|| {
                    format!("associative list with keys has an element that omits key field {name:?} (and doesn't have default value)")
                })?;
                key.insert(name.to_string(), value.clone());
            }
            Ok(format!("k:{}", Value::Object(key)))
        }
        (Assoc::Map(_), _) => Err("associative list with keys may not have non-map elements".into()),
        (Assoc::Set, Value::Object(_)) => Err("associative list without keys has an element that's a map type".into()),
        (Assoc::Set, Value::Array(_)) => Err("not supported: associative list with lists as elements".into()),
        (Assoc::Set, Value::Null) => Err("associative list without keys has an element that's an explicit null".into()),
        (Assoc::Set, scalar) => Ok(format!("v:{scalar}")),
    }
}

/// A granular list's items with their path elements (items without one were refused by
/// [`check`] and are skipped).
fn index<'v>(list: &'v [Value], assoc: &Assoc, item_ty: Ty) -> Vec<(String, &'v Value)> {
    list.iter().filter_map(|item| Some((item_pe(item, assoc, item_ty).ok()?, item))).collect()
}

/// The typed conversion's checks that matter here (smd/typed/validate.go visitListItems):
/// every item of a granular list has a path element, and, unless allowed, no two share one.
fn check(value: &Value, ty: Ty, allow_duplicates: bool) -> Result<(), String> {
    let mut errors = Vec::new();
    check_at(value, ty, allow_duplicates, "", &mut errors);
    match errors.as_slice() {
        [] => Ok(()),
        [error] => Err(error.clone()),
        _ => Err(format!("errors:\n  {}", errors.join("\n  "))),
    }
}

fn check_at(value: &Value, ty: Ty, allow_duplicates: bool, path: &str, errors: &mut Vec<String>) {
    match Shape::of(Some(value), ty) {
        Shape::Map(map) => {
            for (key, child) in map {
                check_at(child, ty.field(key).0, allow_duplicates, &format!("{path}.{key}"), errors);
            }
        }
        Shape::List(list) => {
            let (Some(assoc), item_ty) = ty.list() else { return };
            let mut seen = BTreeSet::new();
            for (i, item) in list.iter().enumerate() {
                let pe = match item_pe(item, &assoc, item_ty) {
                    Ok(pe) => pe,
                    Err(e) => {
                        errors.push(format!("{path}: element {i}: {e}"));
                        return;
                    }
                };
                if !seen.insert(pe.clone()) && !allow_duplicates {
                    errors.push(format!("{path}: duplicate entries for key {}", display_pe(&pe)));
                }
                check_at(item, item_ty, allow_duplicates, &format!("{path}{}", display_pe(&pe)), errors);
            }
        }
        Shape::Absent | Shape::Null | Shape::Leaf => {}
    }
}

/// The fields a value names (smd/typed/tofieldset.go): leaves, atomic containers, nulls, empty
/// maps and unnamed keys are members; named fields holding content are only parents. A list
/// item is a member (and its fields below it); a duplicated item only a member.
fn field_set(value: &Value, ty: Ty) -> Set {
    let mut set = Set::default();
    match Shape::of(Some(value), ty) {
        Shape::Map(map) => {
            for (key, child) in map {
                let (child_ty, named) = ty.field(key);
                let pe = field_pe(key);
                let leaf = matches!(Shape::of(Some(child), child_ty), Shape::Leaf | Shape::Null);
                if leaf || child.as_object().is_some_and(Map::is_empty) || !named {
                    set.members.insert(pe.clone());
                }
                let below = field_set(child, child_ty);
                if !below.is_empty() {
                    set.children.insert(pe, below);
                }
            }
        }
        Shape::List(list) => {
            let (Some(assoc), item_ty) = ty.list() else { return set };
            let items = index(list, &assoc, item_ty);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (pe, _) in &items {
                *counts.entry(pe).or_default() += 1;
            }
            for (pe, item) in &items {
                set.members.insert(pe.clone());
                if counts[pe.as_str()] == 1 {
                    let below = field_set(item, item_ty);
                    if !below.is_empty() {
                        set.children.insert(pe.clone(), below);
                    }
                }
            }
        }
        Shape::Absent | Shape::Null | Shape::Leaf => {}
    }
    set
}

// ---------------------------------------------------------------------------------------------
// Merge (smd/typed/merge.go, the rule keepRHS)

/// Merges `r` (the configuration) into `l` (the live value): maps merge key by key, associative
/// lists item by item, anything else (leaves, atomic containers, mismatched kinds) is `r`'s.
fn merge(l: Option<&Value>, r: Option<&Value>, ty: Ty) -> Option<Value> {
    let (Some(_), Some(rv)) = (l, r) else {
        return r.or(l).cloned();
    };
    let (ls, rs) = (Shape::of(l, ty), Shape::of(r, ty));
    if !(ls.is_empty() && rs.is_empty()) && ls.compatible(rs) {
        if ls.map().is_some() || rs.map().is_some() {
            let (lm, rm) = (ls.map(), rs.map());
            let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(Map::keys).collect();
            let out: Map<String, Value> = keys
                .into_iter()
                .filter_map(|key| {
                    let (get_l, get_r) = (lm.and_then(|m| m.get(key)), rm.and_then(|m| m.get(key)));
                    Some((key.clone(), merge(get_l, get_r, ty.field(key).0)?))
                })
                .collect();
            return (!out.is_empty()).then_some(Value::Object(out));
        }
        if ls.is_granular() || rs.is_granular() {
            let out = merge_list(ls.list(), rs.list(), ty);
            return (!out.is_empty()).then_some(Value::Array(out));
        }
    }
    Some(rv.clone())
}

/// smd/typed/merge.go visitListItems: live items stay in place, the configuration's items keep
/// their relative order, items only in the configuration go where it puts them.
fn merge_list(l: &[Value], r: &[Value], ty: Ty) -> Vec<Value> {
    static NULL: Value = Value::Null;
    let (Some(assoc), item_ty) = ty.list() else {
        return r.to_vec();
    };
    let (lhs, rhs) = (index(l, &assoc, item_ty), index(r, &assoc, item_ty));
    // A duplicated live item merges as null (indexListPathElements with allowDuplicates).
    let mut observed_l: BTreeMap<&str, &Value> = BTreeMap::new();
    for (pe, item) in &lhs {
        observed_l.entry(pe).and_modify(|v| *v = &NULL).or_insert(item);
    }
    let observed_r: BTreeMap<&str, &Value> = rhs.iter().map(|(pe, item)| (pe.as_str(), *item)).collect();
    let mut shared = rhs.iter().map(|(pe, _)| pe.as_str()).filter(|pe| observed_l.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_r = BTreeSet::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = lhs[li].0.as_str();
            if pe == rhs[ri].0 {
                merged_r.insert(pe);
                out.extend(merge(observed_l.get(pe).copied(), observed_r.get(pe).copied(), item_ty));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_r.contains_key(pe) && next_shared.is_some_and(|next| next != pe) {
                // A shared item, but not the one due in this round.
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = lhs[li].0.as_str();
            if !observed_r.contains_key(pe) {
                out.extend(merge(Some(lhs[li].1), None, item_ty));
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs.len() {
            let pe = rhs[ri].0.as_str();
            merged_r.insert(pe);
            out.extend(merge(observed_l.get(pe).copied(), Some(rhs[ri].1), item_ty));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison (smd/typed/compare.go)

#[derive(Default)]
struct Comparison {
    added: Set,
    modified: Set,
    removed: Set,
}

impl Comparison {
    /// Without the reset fields (smd/typed/compare.go FilterFields with the IgnoreFilter).
    fn without(self, reset: &Set) -> Self {
        Comparison {
            added: self.added.recursive_difference(reset),
            modified: self.modified.recursive_difference(reset),
            removed: self.removed.recursive_difference(reset),
        }
    }

    fn changed(&self) -> Set {
        let mut changed = self.modified.clone();
        changed.union(&self.added);
        changed
    }
}

fn compare(l: &Value, r: &Value, ty: Ty) -> Comparison {
    let mut comparison = Comparison::default();
    compare_at(Some(l), Some(r), ty, &mut Vec::new(), &mut comparison);
    comparison
}

/// Leaves (scalars, atomic containers, two empty sides) are added, removed or modified; a
/// container is added or removed as a whole and walked; two kinds that do not match are a
/// modification and each side's content is walked as removed or added.
fn compare_at(l: Option<&Value>, r: Option<&Value>, ty: Ty, path: &mut Vec<String>, out: &mut Comparison) {
    let (ls, rs) = (Shape::of(l, ty), Shape::of(r, ty));
    if (ls.is_empty() && rs.is_empty()) || !(ls.is_granular() || rs.is_granular()) {
        match (l, r) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    if !ls.compatible(rs) {
        out.modified.insert(path);
        compare_children(ls, Shape::Absent, ty, path, out);
        compare_children(Shape::Absent, rs, ty, path, out);
        return;
    }
    compare_children(ls, rs, ty, path, out);
    match (l, r) {
        (None, _) => out.added.insert(path),
        (_, None) => out.removed.insert(path),
        _ => {}
    }
}

fn compare_children(ls: Shape, rs: Shape, ty: Ty, path: &mut Vec<String>, out: &mut Comparison) {
    if ls.map().is_some() || rs.map().is_some() {
        let (lm, rm) = (ls.map(), rs.map());
        let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(Map::keys).collect();
        for key in keys {
            path.push(field_pe(key));
            compare_at(lm.and_then(|m| m.get(key)), rm.and_then(|m| m.get(key)), ty.field(key).0, path, out);
            path.pop();
        }
    } else if ls.is_granular() || rs.is_granular() {
        compare_list(ls.list(), rs.list(), ty, path, out);
    }
}

/// smd/typed/compare.go visitListItems, duplicates included.
fn compare_list(l: &[Value], r: &[Value], ty: Ty, path: &mut Vec<String>, out: &mut Comparison) {
    let (Some(assoc), item_ty) = ty.list() else { return };
    let mut order: Vec<String> = Vec::new();
    let mut items: BTreeMap<String, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
    for (side, list) in [(0, l), (1, r)] {
        for (pe, item) in index(list, &assoc, item_ty) {
            let entry = items.entry(pe.clone()).or_insert_with(|| {
                order.push(pe);
                (Vec::new(), Vec::new())
            });
            if side == 0 { entry.0.push(item) } else { entry.1.push(item) }
        }
    }
    for pe in order {
        let (li, ri) = &items[&pe];
        path.push(pe);
        match (li.len(), ri.len()) {
            (0 | 1, 0 | 1) => compare_at(li.first().copied(), ri.first().copied(), item_ty, path, out),
            (2.., 2..) if li != ri => out.modified.insert(path),
            (2.., 2..) => {}
            (2.., _) => {
                compare_at(None, ri.first().copied(), item_ty, path, out);
                out.removed.insert(path);
            }
            (_, 2..) => {
                compare_at(li.first().copied(), None, item_ty, path, out);
                out.added.insert(path);
            }
        }
        path.pop();
    }
}

// ---------------------------------------------------------------------------------------------
// Removal (smd/merge/update.go prune, addBackOwnedItems, addBackDanglingItems)

/// Whether a set owns a path element, a named field counting as owned when something below it
/// is (smd/fieldpath/set.go EnsureNamedFieldsAreMembers).
fn owns(set: Option<&Set>, pe: &str, named: bool) -> bool {
    set.is_some_and(|s| s.members.contains(pe) || (named && s.children.contains_key(pe)))
}

/// Removes from the merged value what the applier owned last time (`last`, at this node) and
/// nobody owns now (`managed`, every manager's set at this node, the applier's new one
/// included): a path of `last` goes, with all below it, when it or one of its ancestors within
/// `last` is owned by no one. What the three passes of upstream's prune leave comes to this.
/// A container emptied that way becomes null, as smd/typed/remove.go leaves it. Returns whether
/// anything was removed.
fn prune(value: &mut Value, ty: Ty, last: &Set, managed: Option<&Set>, in_last: bool, orphaned: bool) -> bool {
    let mut removed = false;
    // For one child: whether it goes, whether it is within `last`, and whether it or an
    // ancestor within `last` is owned by no one.
    let decide = |pe: &str, named: bool| {
        let listed = owns(Some(last), pe, named);
        let within = in_last || listed;
        let unowned = orphaned || (within && !owns(managed, pe, named));
        (listed && unowned, within, unowned)
    };
    if let Value::Object(map) = value {
        if ty.map_atomic() {
            return false;
        }
        let keys: Vec<String> = map.keys().filter(|k| owns(Some(last), &field_pe(k), true)).cloned().collect();
        for key in keys {
            let (child_ty, named) = ty.field(&key);
            let pe = field_pe(&key);
            let Some(child) = map.get_mut(&key) else { continue };
            // A named field holding an empty granular list names no field (tofieldset.go).
            if named && matches!(Shape::of(Some(child), child_ty), Shape::List([])) {
                continue;
            }
            let (remove, in_last, orphaned) = decide(&pe, named);
            if remove {
                map.remove(&key);
                removed = true;
            } else if let Some(below) = last.children.get(&pe)
                && prune(child, child_ty, below, managed.and_then(|m| m.children.get(&pe)), in_last, orphaned)
            {
                removed = true;
                nullify_if_empty(child);
            }
        }
    } else if let Value::Array(list) = value {
        let (Some(assoc), item_ty) = ty.list() else { return false };
        let items = std::mem::take(list);
        for mut item in items {
            let Ok(pe) = item_pe(&item, &assoc, item_ty) else {
                list.push(item);
                continue;
            };
            let (remove, in_last, orphaned) = decide(&pe, false);
            if remove {
                removed = true;
                continue;
            }
            if let Some(below) = last.children.get(&pe)
                && prune(&mut item, item_ty, below, managed.and_then(|m| m.children.get(&pe)), in_last, orphaned)
            {
                removed = true;
                nullify_if_empty(&mut item);
            }
            list.push(item);
        }
    }
    removed
}

fn nullify_if_empty(value: &mut Value) {
    if value.as_object().is_some_and(Map::is_empty) || value.as_array().is_some_and(Vec::is_empty) {
        *value = Value::Null;
    }
}

// ---------------------------------------------------------------------------------------------
// Managers and entries (internal/managedfields.go)

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

/// A manager's identity (internal/managedfields.go BuildManagerIdentifier): an `Update` entry is
/// also keyed by its apiVersion, an `Apply` entry is not, so an applier keeps one entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Id {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
}

impl Id {
    /// internal/conflict.go printManager (the identifier has no time).
    fn printed(&self) -> String {
        let mut printed = Value::from(self.manager.as_str()).to_string();
        if !self.subresource.is_empty() {
            printed += &format!(" with subresource {}", Value::from(self.subresource.as_str()));
        }
        if self.operation == Operation::Update {
            printed += &format!(" using {}", self.api_version);
        }
        printed
    }
}

#[derive(Clone, Debug)]
struct Owned {
    set: Set,
    api_version: String,
    time: Option<String>,
}

type Managed = BTreeMap<Id, Owned>;

impl Write<'_> {
    fn id(&self, manager: &str, operation: Operation) -> Id {
        Id {
            manager: if manager.is_empty() { "unknown" } else { manager }.into(),
            operation,
            api_version: if operation == Operation::Update { self.api_version.into() } else { String::new() },
            subresource: self.subresource.unwrap_or_default().into(),
        }
    }

    fn reset(&self) -> Set {
        let mut reset = Set::default();
        for path in self.reset_fields {
            reset.insert(&path.iter().map(|name| field_pe(name)).collect::<Vec<_>>());
        }
        reset
    }
}

/// The fields never owned (internal/stripmeta.go): a plain difference, so only these paths.
fn strip(set: &Set) -> Set {
    static STRIP: OnceLock<Set> = OnceLock::new();
    set.difference(STRIP.get_or_init(|| {
        let mut strip = Set::default();
        for top in ["apiVersion", "kind", "metadata"] {
            strip.insert(&[field_pe(top)]);
        }
        for meta in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            strip.insert(&[field_pe("metadata"), field_pe(meta)]);
        }
        strip
    }))
}

/// An Update by `id` from `old` to `new` (smd/merge/update.go Update as wrapped by
/// internal/managedfieldsupdater.go): the added and modified fields leave every manager's set
/// and join `id`'s, the removed ones leave every set; `id`'s time moves only if it took fields.
fn record_update(managed: &mut Managed, old: &Value, new: &Value, id: Id, write: &Write) {
    let comparison = compare(old, new, Ty::Root(write.schema)).without(&write.reset());
    let changed = comparison.changed();
    for owned in managed.values_mut() {
        owned.set = owned.set.difference(&changed).difference(&comparison.removed);
    }
    managed.retain(|_, owned| !owned.set.is_empty());
    let taken = strip(&changed);
    if !taken.is_empty() {
        let owned =
            managed.entry(id).or_insert_with(|| Owned { set: Set::default(), api_version: String::new(), time: None });
        owned.set.union(&taken);
        owned.api_version = write.api_version.into();
        owned.time = Some(write.time.into());
    }
}

/// internal/capmanagers.go: past 10 Update entries, the oldest are merged, per apiVersion, into
/// an "ancient-changes" entry. Times compare as RFC 3339 strings (metav1.Time's UTC format).
fn cap_update_managers(managed: &mut Managed) {
    const MAX_UPDATE_MANAGERS: usize = 10;
    let mut updaters: Vec<Id> = managed.keys().filter(|id| id.operation == Operation::Update).cloned().collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let time = |id: &Id| managed[id].time.clone().unwrap_or_default();
    updaters.sort_by_cached_key(|id| (time(id), id.clone()));
    let mut first_of_version: BTreeMap<String, Id> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(owned) = managed.get(&id).cloned() else { continue };
        let Some(first) = first_of_version.get(&owned.api_version) else {
            first_of_version.insert(owned.api_version.clone(), id);
            continue;
        };
        let bucket = Id {
            manager: "ancient-changes".into(),
            operation: Operation::Update,
            api_version: owned.api_version.clone(),
            subresource: String::new(),
        };
        if !managed.contains_key(&bucket)
            && let Some(first) = managed.remove(first)
        {
            managed.insert(bucket.clone(), first);
        }
        let mut set = owned.set;
        if let Some(existing) = managed.get(&bucket) {
            set.union(&existing.set);
        }
        managed.insert(bucket, Owned { set, api_version: owned.api_version, time: owned.time });
        managed.remove(&id);
        length -= 1;
    }
}

/// A metav1.ManagedFieldsEntry as read from an object.
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    fields_type: String,
    fields_v1: Option<Value>,
    subresource: String,
}

/// `metadata.managedFields` as Unstructured.GetManagedFields reads it (apimachinery
/// unstructured.go): `None` when absent, not a list, or an item is not an entry.
fn read_entries(object: &Value) -> Option<Vec<Entry>> {
    let list = object.get("metadata")?.get("managedFields")?.as_array()?;
    list.iter()
        .map(|item| {
            let item = item.as_object()?;
            let text = |key: &str| match item.get(key) {
                None | Some(Value::Null) => Some(String::new()),
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => None,
            };
            Some(Entry {
                manager: text("manager")?,
                operation: text("operation")?,
                api_version: text("apiVersion")?,
                time: Some(text("time")?).filter(|t| !t.is_empty()),
                fields_type: text("fieldsType")?,
                fields_v1: item.get("fieldsV1").filter(|f| !f.is_null()).cloned(),
                subresource: text("subresource")?,
            })
        })
        .collect()
}

/// internal/fieldmanager.go isResetManagedFields: `[]`, or one empty entry.
fn is_reset(entries: &[Entry]) -> bool {
    match entries {
        [] => true,
        [e] => {
            [&e.manager, &e.operation, &e.api_version, &e.fields_type, &e.subresource].iter().all(|s| s.is_empty())
                && e.time.is_none()
                && e.fields_v1.is_none()
        }
        _ => false,
    }
}

/// internal/managedfields.go DecodeManagedFields (a later duplicate identifier wins).
fn decode(entries: &[Entry]) -> Result<Managed, String> {
    let mut managed = Managed::new();
    for (i, e) in entries.iter().enumerate() {
        let operation = match e.operation.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        if e.api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match e.fields_type.as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => return Err(format!("invalid fieldsType {other:?} in managed fields entry {i}")),
        }
        let set = e.fields_v1.as_ref().map_or(Ok(Set::default()), Set::from_fields_v1)?;
        let id = Id {
            manager: e.manager.clone(),
            operation,
            api_version: if operation == Operation::Update { e.api_version.clone() } else { String::new() },
            subresource: e.subresource.clone(),
        };
        managed.insert(id, Owned { set, api_version: e.api_version.clone(), time: e.time.clone() });
    }
    Ok(managed)
}

/// internal/managedfields.go encodeManagedFields: Apply entries before Update ones, then by time,
/// manager, apiVersion, subresource; no entries means no `managedFields`.
fn encode(object: &mut Value, managed: &Managed) {
    let Value::Object(object) = object else { return };
    if managed.is_empty() {
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        return;
    }
    let mut entries: Vec<(&Id, &Owned)> = managed.iter().collect();
    entries.sort_by(|(a, x), (b, y)| {
        (a.operation, x.time.as_deref().unwrap_or_default(), &a.manager, &x.api_version, &a.subresource).cmp(&(
            b.operation,
            y.time.as_deref().unwrap_or_default(),
            &b.manager,
            &y.api_version,
            &b.subresource,
        ))
    });
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(id, owned)| {
            let mut entry = Map::new();
            if !id.manager.is_empty() {
                entry.insert("manager".into(), json!(id.manager));
            }
            let operation = if id.operation == Operation::Apply { "Apply" } else { "Update" };
            entry.insert("operation".into(), json!(operation));
            entry.insert("apiVersion".into(), json!(owned.api_version));
            if let Some(time) = &owned.time {
                entry.insert("time".into(), json!(time));
            }
            entry.insert("fieldsType".into(), json!("FieldsV1"));
            entry.insert("fieldsV1".into(), owned.set.to_fields_v1());
            if !id.subresource.is_empty() {
                entry.insert("subresource".into(), json!(id.subresource));
            }
            Value::Object(entry)
        })
        .collect();
    // Unstructured.SetManagedFields cannot set it under a metadata that is not an object.
    if let Value::Object(metadata) = object.entry("metadata").or_insert_with(|| json!({})) {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

fn remove_managed_fields(object: &mut Value) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
}

/// internal/structuredmerge.go objectGVKNN: `namespace/name; group/version, Kind=kind`.
fn gvknn(object: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let api_version = text(&object["apiVersion"]);
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    format!(
        "{}/{}; {group}/{version}, Kind={}",
        text(&object["metadata"]["namespace"]),
        text(&object["metadata"]["name"]),
        text(&object["kind"])
    )
}

/// Tests cite the same upstream files (kubernetes v1.32, structured-merge-diff v4.4.2) as the
/// rules they check.
#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u32) -> String {
        format!("2024-01-01T00:00:{second:02}Z")
    }

    fn write<'a>(manager: &'a str, time: &'a str) -> Write<'a> {
        Write { manager, api_version: "v1", time, subresource: None, schema: None, reset_fields: &[] }
    }

    fn object(spec: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Widget",
            "metadata": { "name": "w", "namespace": "ns", "uid": "u-1" },
            "spec": spec,
        })
    }

    fn entries(object: &Value) -> &[Value] {
        object["metadata"]["managedFields"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        entries(object).iter().find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    fn fields<'v>(object: &'v Value, manager: &str, operation: &str) -> &'v Value {
        &entry(object, manager, operation).expect("the entry")["fieldsV1"]
    }

    /// A CRD schema with every list and map type.
    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": { "type": "integer" },
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "properties": { "name": { "type": "string" }, "port": { "type": "integer" } },
                            },
                        },
                        "tags": { "type": "array", "x-kubernetes-list-type": "set", "items": { "type": "string" } },
                        "args": { "type": "array", "items": { "type": "string" } },
                        "selector": {
                            "type": "object",
                            "x-kubernetes-map-type": "atomic",
                            "additionalProperties": { "type": "string" },
                        },
                        "extra": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                    },
                },
                "status": { "type": "object", "properties": { "ready": { "type": "boolean" } } },
            },
        })
    }

    // --- Field sets (smd/typed/tofieldset.go, internal/stripmeta.go) -------------------------

    #[test]
    fn fields_v1_without_schema_recurses_maps_and_owns_lists_whole() {
        let config = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "1", "generation": 1,
                "creationTimestamp": "2024-01-01T00:00:00Z", "selfLink": "/x", "labels": { "app": "x" },
            },
            "data": { "k": "v" },
            "spec": { "list": [{ "a": 1 }, 2], "empty": {}, "none": null },
        });
        assert_eq!(
            fields_v1(&config, None),
            json!({
                "f:metadata": { "f:labels": { "f:app": {} } },
                "f:data": { "f:k": {} },
                "f:spec": { "f:list": {}, "f:empty": {}, "f:none": {} },
            })
        );
    }

    #[test]
    fn fields_v1_follows_the_crd_schema_list_and_map_types() {
        let config = object(json!({
            "ports": [{ "name": "http", "port": 80 }],
            "tags": ["a"],
            "args": ["x"],
            "selector": { "app": "w" },
            "extra": { "free": { "form": 1 } },
        }));
        assert_eq!(
            fields_v1(&config, Some(&schema())),
            json!({ "f:spec": {
                "f:ports": { "k:{\"name\":\"http\"}": { ".": {}, "f:name": {}, "f:port": {} } },
                "f:tags": { "v:\"a\"": {} },
                "f:args": {},
                "f:selector": {},
                // Deduced keys below preserve-unknown-fields are members themselves.
                "f:extra": { "f:free": { ".": {}, "f:form": {} } },
            }})
        );
    }

    #[test]
    fn fields_v1_list_map_keys_take_schema_defaults() {
        // smd/typed/helpers.go getAssociativeKeyDefault.
        let schema = json!({ "properties": { "spec": { "properties": { "ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": { "properties": { "port": {}, "protocol": { "default": "TCP" } } },
        }}}}});
        let config = object(json!({ "ports": [{ "port": 80 }] }));
        assert_eq!(
            fields_v1(&config, Some(&schema)),
            json!({ "f:spec": { "f:ports": { "k:{\"port\":80,\"protocol\":\"TCP\"}": { ".": {}, "f:port": {} } } } })
        );
    }

    #[test]
    fn fields_v1_object_meta_finalizers_are_a_set_and_owner_references_keyed_by_uid() {
        let config = json!({ "metadata": {
            "finalizers": ["example.com/f"],
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1" }],
        }});
        assert_eq!(
            fields_v1(&config, None),
            json!({ "f:metadata": {
                "f:finalizers": { "v:\"example.com/f\"": {} },
                "f:ownerReferences": { "k:{\"uid\":\"u1\"}": {} },
            }})
        );
    }

    #[test]
    fn fields_v1_round_trips_and_drops_unknown_element_types() {
        // smd/fieldpath/serialize.go readIterV1.
        let fields = json!({ "f:a": { ".": {}, "f:b": {} }, "f:c": {}, "f:d": { "k:{\"y\":2,\"x\":1}": {} } });
        let set = Set::from_fields_v1(&fields).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({ "f:a": { ".": {}, "f:b": {} }, "f:c": {}, "f:d": { "k:{\"x\":1,\"y\":2}": {} } })
        );
        let unknown = Set::from_fields_v1(&json!({ "f:a": { "z:future": {} } })).unwrap();
        assert_eq!(unknown.to_fields_v1(), json!({ "f:a": {} }));
        assert!(Set::from_fields_v1(&json!({ "x": {} })).is_err());
        assert!(Set::from_fields_v1(&json!({ "f:a": 1 })).is_err());
    }

    // --- Apply (smd/merge/update.go Apply, internal/structuredmerge.go) -----------------------

    #[test]
    fn apply_create_records_an_apply_entry() {
        let config = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "cm", "namespace": "ns", "labels": { "app": "a" } },
            "data": { "k": "v" },
        });
        let created = apply(None, &config, &write("kubectl", &at(1)), false).unwrap();
        let mut expected = config.clone();
        expected["metadata"]["managedFields"] = json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": at(1),
            "fieldsType": "FieldsV1",
            "fieldsV1": { "f:data": { "f:k": {} }, "f:metadata": { "f:labels": { "f:app": {} } } },
        }]);
        assert_eq!(created, expected);
    }

    #[test]
    fn apply_conflicts_with_an_update_manager() {
        // internal/conflict.go getConflictMessage, printManager ("using <apiVersion>").
        let live = update(None, object(json!({ "replicas": 1 })), &write("editor", &at(1)));
        let err = apply(Some(&live), &object(json!({ "replicas": 2 })), &write("applier", &at(2)), false).unwrap_err();
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"editor\" using v1: .spec.replicas");
        assert_eq!(
            err.status(),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Apply failed with 1 conflict: conflict with \"editor\" using v1: .spec.replicas",
                "reason": "Conflict",
                "details": { "causes": [{
                    "reason": "FieldManagerConflict",
                    "message": "conflict with \"editor\" using v1",
                    "field": ".spec.replicas",
                }]},
                "code": 409,
            })
        );
    }

    #[test]
    fn apply_conflict_with_another_applier_names_no_version() {
        let live = apply(None, &object(json!({ "replicas": 1 })), &write("first", &at(1)), false).unwrap();
        let err = apply(Some(&live), &object(json!({ "replicas": 2 })), &write("second", &at(2)), false).unwrap_err();
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"first\": .spec.replicas");
    }

    #[test]
    fn apply_lists_conflicts_grouped_by_manager() {
        let live = update(None, object(json!({ "x": 1 })), &write("a-editor", &at(1)));
        let live = apply(Some(&live), &object(json!({ "y": 1 })), &write("b-applier", &at(2)), false).unwrap();
        let err = apply(Some(&live), &object(json!({ "x": 2, "y": 2 })), &write("c", &at(3)), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"a-editor\" using v1:\n- .spec.x\nconflicts with \"b-applier\":\n- .spec.y"
        );
    }

    #[test]
    fn apply_with_force_takes_the_conflicting_fields() {
        let live = update(None, object(json!({ "replicas": 1, "paused": false })), &write("editor", &at(1)));
        let applied = apply(Some(&live), &object(json!({ "replicas": 2 })), &write("applier", &at(2)), true).unwrap();
        assert_eq!(applied["spec"]["replicas"], 2);
        assert_eq!(fields(&applied, "applier", "Apply"), &json!({ "f:spec": { "f:replicas": {} } }));
        assert_eq!(fields(&applied, "editor", "Update"), &json!({ "f:spec": { ".": {}, "f:paused": {} } }));
    }

    #[test]
    fn apply_of_the_same_value_shares_ownership() {
        let live = update(None, object(json!({ "replicas": 1 })), &write("editor", &at(1)));
        let applied = apply(Some(&live), &object(json!({ "replicas": 1 })), &write("applier", &at(2)), false).unwrap();
        assert_eq!(fields(&applied, "applier", "Apply"), &json!({ "f:spec": { "f:replicas": {} } }));
        assert_eq!(fields(&applied, "editor", "Update"), &json!({ "f:spec": { ".": {}, "f:replicas": {} } }));
    }

    #[test]
    fn apply_merges_maps_replaces_atomic_lists_and_merges_keyed_lists() {
        let schema = schema();
        let w = |manager, time| Write { schema: Some(&schema), ..write(manager, time) };
        let first = object(json!({
            "replicas": 1,
            "args": ["x", "y"],
            "ports": [{ "name": "http", "port": 80 }, { "name": "metrics", "port": 9090 }],
            "tags": ["t1"],
            "selector": { "a": "1", "b": "2" },
        }));
        let t1 = at(1);
        let live = apply(None, &first, &w("a", &t1), false).unwrap();
        let second = object(json!({
            "args": ["z"],
            "ports": [{ "name": "grpc", "port": 9000 }, { "name": "http", "port": 8080 }],
            "tags": ["t2"],
            "selector": { "c": "3" },
        }));
        let t2 = at(2);
        let err = apply(Some(&live), &second, &w("b", &t2), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.args\n- .spec.selector\n- .spec.ports[name=\"http\"].port"
        );
        let merged = apply(Some(&live), &second, &w("b", &t2), true).unwrap();
        assert_eq!(
            merged["spec"],
            json!({
                "replicas": 1,
                "args": ["z"],
                // smd/typed/merge.go visitListItems: live order kept, the new item placed before
                // the shared one as the configuration has it.
                "ports": [{ "name": "grpc", "port": 9000 }, { "name": "http", "port": 8080 }, { "name": "metrics", "port": 9090 }],
                "tags": ["t1", "t2"],
                "selector": { "c": "3" },
            })
        );
    }

    #[test]
    fn apply_removes_what_the_applier_no_longer_applies() {
        let live = apply(None, &object(json!({ "a": 1, "b": { "c": 2 } })), &write("applier", &at(1)), false).unwrap();
        let applied = apply(Some(&live), &object(json!({ "a": 1 })), &write("applier", &at(2)), false).unwrap();
        assert_eq!(applied["spec"], json!({ "a": 1 }));
        // The applier's set is exactly the configuration's.
        assert_eq!(fields(&applied, "applier", "Apply"), &fields_v1(&object(json!({ "a": 1 })), None));
    }

    #[test]
    fn apply_dropping_all_its_labels_keeps_the_rest_of_the_metadata() {
        let mut labelled = object(json!({ "a": 1 }));
        labelled["metadata"]["labels"] = json!({ "app": "w" });
        let live = apply(None, &labelled, &write("applier", &at(1)), false).unwrap();
        let applied = apply(Some(&live), &object(json!({ "a": 1 })), &write("applier", &at(2)), false).unwrap();
        assert_eq!(
            applied["metadata"],
            json!({ "name": "w", "namespace": "ns", "uid": "u-1", "managedFields": entries(&applied) })
        );
    }

    #[test]
    fn apply_removes_a_dropped_keyed_item() {
        let schema = schema();
        let w = |manager, time| Write { schema: Some(&schema), ..write(manager, time) };
        let t1 = at(1);
        let two = object(json!({ "ports": [{ "name": "http", "port": 80 }, { "name": "metrics", "port": 9090 }] }));
        let live = apply(None, &two, &w("applier", &t1), false).unwrap();
        let t2 = at(2);
        let one = object(json!({ "ports": [{ "name": "http", "port": 80 }] }));
        let applied = apply(Some(&live), &one, &w("applier", &t2), false).unwrap();
        assert_eq!(applied["spec"]["ports"], json!([{ "name": "http", "port": 80 }]));
    }

    #[test]
    fn apply_keeps_a_dropped_field_that_another_manager_owns() {
        let live = apply(None, &object(json!({ "a": 1, "b": 2 })), &write("applier", &at(1)), false).unwrap();
        let live = apply(Some(&live), &object(json!({ "b": 2 })), &write("other", &at(2)), false).unwrap();
        let applied = apply(Some(&live), &object(json!({ "a": 1 })), &write("applier", &at(3)), false).unwrap();
        assert_eq!(applied["spec"], json!({ "a": 1, "b": 2 }));
        assert_eq!(fields(&applied, "applier", "Apply"), &json!({ "f:spec": { "f:a": {} } }));
        assert_eq!(fields(&applied, "other", "Apply"), &json!({ "f:spec": { "f:b": {} } }));
    }

    #[test]
    fn apply_removes_a_whole_subtree_nobody_else_owns() {
        // `.spec.template.y` is owned by nobody: it goes with the map the applier dropped.
        let mut live = object(json!({ "template": { "x": 1, "y": 2 }, "keep": 1 }));
        live["metadata"]["managedFields"] = json!([{
            "manager": "applier", "operation": "Apply", "apiVersion": "v1", "time": at(1), "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": { "f:template": { "f:x": {} }, "f:keep": {} } },
        }]);
        let applied = apply(Some(&live), &object(json!({ "keep": 1 })), &write("applier", &at(2)), false).unwrap();
        assert_eq!(applied["spec"], json!({ "keep": 1 }));
    }

    #[test]
    fn apply_dropping_a_keyed_item_removes_it_whole_even_fields_others_own() {
        // The editor owns `.port` inside the item but not the item itself, so the item goes
        // (smd/merge/update.go addBackOwnedItems only adds back owned paths), and the emptied
        // list is left null (smd/typed/remove.go).
        let schema = schema();
        let w = |manager, time| Write { schema: Some(&schema), ..write(manager, time) };
        let (t1, t2, t3) = (at(1), at(2), at(3));
        let live =
            apply(None, &object(json!({ "ports": [{ "name": "http", "port": 80 }] })), &w("applier", &t1), false)
                .unwrap();
        let mut edited = live.clone();
        edited["spec"]["ports"][0]["port"] = json!(81);
        let live = update(Some(&live), edited, &w("editor", &t2));
        assert_eq!(
            fields(&live, "editor", "Update"),
            &json!({ "f:spec": { "f:ports": { "k:{\"name\":\"http\"}": { "f:port": {} } } } })
        );
        let applied = apply(Some(&live), &object(json!({ "replicas": 1 })), &w("applier", &t3), false).unwrap();
        assert_eq!(applied["spec"], json!({ "ports": null, "replicas": 1 }));
        assert!(entry(&applied, "editor", "Update").is_none());
    }

    #[test]
    fn apply_refuses_managed_fields_in_the_configuration() {
        let mut config = object(json!({}));
        config["metadata"]["managedFields"] = json!([]);
        let err = apply(None, &config, &write("applier", &at(1)), false).unwrap_err();
        assert_eq!((err.code(), err.to_string().as_str()), (400, "metadata.managedFields must be nil"));
        assert_eq!(err.status()["reason"], "BadRequest");
    }

    #[test]
    fn apply_refuses_duplicate_keys_in_the_configuration() {
        let schema = schema();
        let mut config = object(json!({ "ports": [{ "name": "http", "port": 1 }, { "name": "http", "port": 2 }] }));
        config["apiVersion"] = json!("example.com/v1");
        let err = apply(None, &config, &Write { schema: Some(&schema), ..write("applier", "t") }, false).unwrap_err();
        assert_eq!(err.code(), 500);
        assert_eq!(
            err.to_string(),
            "failed to create typed patch object (ns/w; example.com/v1, Kind=Widget): .spec.ports: duplicate entries for key [name=\"http\"]"
        );
    }

    #[test]
    fn apply_to_an_untracked_object_conflicts_with_before_first_apply() {
        // internal/skipnonapplied.go: existing fields are first owned by "before-first-apply".
        let live = object(json!({ "replicas": 1, "paused": true }));
        let err = apply(Some(&live), &object(json!({ "replicas": 2 })), &write("applier", &at(1)), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .spec.replicas"
        );
        let applied = apply(Some(&live), &object(json!({ "replicas": 1 })), &write("applier", &at(1)), false).unwrap();
        assert_eq!(
            fields(&applied, "before-first-apply", "Update"),
            &json!({ "f:spec": { ".": {}, "f:replicas": {}, "f:paused": {} } })
        );
    }

    #[test]
    fn apply_that_changes_nothing_moves_no_time() {
        // internal/managedfieldsupdater.go Apply: the time is set only when the object changed.
        let config = object(json!({ "replicas": 1 }));
        let live = apply(None, &config, &write("applier", &at(1)), false).unwrap();
        let again = apply(Some(&live), &config, &write("applier", &at(2)), false).unwrap();
        assert_eq!(again, live);
        let shared = apply(Some(&live), &config, &write("second", &at(3)), false).unwrap();
        let second = entry(&shared, "second", "Apply").unwrap();
        assert!(second.get("time").is_none(), "{second}");
    }

    #[test]
    fn apply_to_the_status_subresource_owns_only_status() {
        let schema = schema();
        let live = update(None, object(json!({ "replicas": 1 })), &write("editor", &at(1)));
        let status = Write {
            subresource: Some("status"),
            schema: Some(&schema),
            reset_fields: custom_resource_reset_fields(Some("status"), true),
            ..write("controller", "t")
        };
        let mut config = object(json!({ "replicas": 5 }));
        config["status"] = json!({ "ready": true });
        let applied = apply(Some(&live), &config, &status, false).unwrap();
        let entry = entry(&applied, "controller", "Apply").unwrap();
        assert_eq!(entry["subresource"], "status");
        assert_eq!(entry["fieldsV1"], json!({ "f:status": { "f:ready": {} } }));
    }

    #[test]
    fn apply_to_the_main_resource_does_not_own_a_status_it_resets() {
        let schema = schema();
        let main = Write {
            schema: Some(&schema),
            reset_fields: custom_resource_reset_fields(None, true),
            ..write("applier", "t")
        };
        let mut config = object(json!({ "replicas": 1 }));
        config["status"] = json!({ "ready": true });
        let applied = apply(None, &config, &main, false).unwrap();
        assert_eq!(fields(&applied, "applier", "Apply"), &json!({ "f:spec": { "f:replicas": {} } }));
    }

    // --- Update (smd/merge/update.go Update, internal/managedfieldsupdater.go) ----------------

    #[test]
    fn update_create_owns_what_it_added_with_container_members() {
        let mut new = object(json!({ "x": 1 }));
        new["metadata"]["labels"] = json!({ "app": "a" });
        let created = update(None, new, &write("kubectl-create", &at(1)));
        assert_eq!(
            entries(&created),
            [json!({
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": at(1),
                "fieldsType": "FieldsV1",
                "fieldsV1": { "f:metadata": { "f:labels": { ".": {}, "f:app": {} } }, "f:spec": { ".": {}, "f:x": {} } },
            })]
        );
    }

    #[test]
    fn update_takes_changed_fields_from_every_other_manager() {
        let live = apply(None, &object(json!({ "a": 1, "b": 1 })), &write("applier", &at(1)), false).unwrap();
        let mut edited = live.clone();
        edited["spec"]["c"] = json!(1);
        let live = update(Some(&live), edited, &write("editor", &at(2)));
        let mut changed = live.clone();
        changed["spec"]["a"] = json!(2);
        changed["spec"]["c"] = json!(2);
        let updated = update(Some(&live), changed, &write("ctl", &at(3)));
        assert_eq!(fields(&updated, "applier", "Apply"), &json!({ "f:spec": { "f:b": {} } }));
        assert!(entry(&updated, "editor", "Update").is_none());
        assert_eq!(fields(&updated, "ctl", "Update"), &json!({ "f:spec": { "f:a": {}, "f:c": {} } }));
    }

    #[test]
    fn update_removing_a_field_removes_it_from_every_set() {
        let live = apply(None, &object(json!({ "a": 1, "b": 1 })), &write("applier", &at(1)), false).unwrap();
        let mut removed = live.clone();
        removed["spec"].as_object_mut().unwrap().remove("b");
        let updated = update(Some(&live), removed, &write("ctl", &at(2)));
        assert_eq!(fields(&updated, "applier", "Apply"), &json!({ "f:spec": { "f:a": {} } }));
        assert!(entry(&updated, "ctl", "Update").is_none(), "a removal gives no ownership");
    }

    #[test]
    fn update_entries_are_per_api_version_apply_entries_are_not() {
        // internal/managedfields.go BuildManagerIdentifier.
        let v2 = |manager, time| Write { api_version: "v2", ..write(manager, time) };
        let (t1, t2, t3, t4) = (at(1), at(2), at(3), at(4));
        let live = update(None, object(json!({ "a": 1 })), &write("editor", &t1));
        let mut edited = live.clone();
        edited["spec"]["b"] = json!(1);
        let live = update(Some(&live), edited, &v2("editor", &t2));
        let editor: Vec<&Value> = entries(&live).iter().filter(|e| e["manager"] == "editor").collect();
        assert_eq!(editor.iter().map(|e| &e["apiVersion"]).collect::<Vec<_>>(), [&json!("v1"), &json!("v2")]);
        let live = apply(Some(&live), &object(json!({ "c": 1 })), &write("applier", &t3), false).unwrap();
        let live = apply(Some(&live), &object(json!({ "c": 2 })), &v2("applier", &t4), false).unwrap();
        let applier: Vec<&Value> = entries(&live).iter().filter(|e| e["manager"] == "applier").collect();
        assert_eq!(applier.len(), 1);
        assert_eq!(applier[0]["apiVersion"], "v2");
    }

    #[test]
    fn update_that_changes_nothing_keeps_the_time() {
        let live = update(None, object(json!({ "a": 1 })), &write("editor", &at(1)));
        let again = update(Some(&live), live.clone(), &write("editor", &at(2)));
        assert_eq!(entry(&again, "editor", "Update").unwrap()["time"], at(1));
    }

    #[test]
    fn update_of_an_untracked_existing_object_stays_untracked() {
        // internal/skipnonapplied.go Update: the old object has a uid and no managed fields.
        let old = object(json!({ "a": 1 }));
        let updated = update(Some(&old), object(json!({ "a": 2 })), &write("editor", &at(1)));
        assert!(updated["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn update_with_empty_managed_fields_clears_them() {
        // internal/fieldmanager.go isResetManagedFields: `[]` or `[{}]`.
        let live = update(None, object(json!({ "a": 1 })), &write("editor", &at(1)));
        for reset in [json!([]), json!([{}])] {
            let mut new = object(json!({ "a": 2 }));
            new["metadata"]["managedFields"] = reset;
            let updated = update(Some(&live), new, &write("editor", &at(2)));
            assert!(updated["metadata"].get("managedFields").is_none(), "{updated}");
        }
    }

    #[test]
    fn update_omitting_managed_fields_keeps_the_live_ones_and_supplied_ones_replace_them() {
        let live = update(None, object(json!({ "a": 1 })), &write("editor", &at(1)));
        let kept = update(Some(&live), object(json!({ "a": 1 })), &write("other", &at(2)));
        assert_eq!(entries(&kept), entries(&live));
        let supplied = json!([{
            "manager": "someone", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": { "f:a": {} } },
        }]);
        let mut new = object(json!({ "a": 1 }));
        new["metadata"]["managedFields"] = supplied.clone();
        assert_eq!(
            entries(&update(Some(&live), new, &write("other", &at(2)))),
            supplied.as_array().unwrap().as_slice()
        );
        // Entries that do not decode are ignored in favour of the live ones.
        let mut invalid = object(json!({ "a": 1 }));
        invalid["metadata"]["managedFields"] = json!([{ "manager": "x", "operation": "Bogus", "apiVersion": "v1" }]);
        assert_eq!(entries(&update(Some(&live), invalid, &write("other", &at(2)))), entries(&live));
    }

    #[test]
    fn status_update_keeps_the_live_entries_and_records_its_subresource() {
        let live = update(None, object(json!({ "a": 1 })), &write("editor", &at(1)));
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([]);
        new["status"] = json!({ "ready": true });
        new["spec"]["a"] = json!(2);
        let time = at(2);
        let status = Write {
            subresource: Some("status"),
            reset_fields: custom_resource_reset_fields(Some("status"), true),
            ..write("controller", &time)
        };
        let updated = update(Some(&live), new, &status);
        assert_eq!(fields(&updated, "editor", "Update"), &json!({ "f:spec": { ".": {}, "f:a": {} } }));
        let controller = entry(&updated, "controller", "Update").unwrap();
        assert_eq!(controller["subresource"], "status");
        assert_eq!(controller["fieldsV1"], json!({ "f:status": { ".": {}, "f:ready": {} } }));
    }

    // --- Entries (internal/managedfields.go, internal/capmanagers.go) -------------------------

    #[test]
    fn entries_sort_apply_first_then_by_time() {
        let live = update(None, object(json!({ "a": 1 })), &write("zz-creator", &at(1)));
        let mut edited = live.clone();
        edited["spec"]["b"] = json!(1);
        let live = update(Some(&live), edited, &write("aa-editor", &at(2)));
        let live = apply(Some(&live), &object(json!({ "c": 1 })), &write("applier", &at(3)), false).unwrap();
        let order: Vec<(&Value, &Value)> = entries(&live).iter().map(|e| (&e["manager"], &e["operation"])).collect();
        assert_eq!(
            order,
            [
                (&json!("applier"), &json!("Apply")),
                (&json!("zz-creator"), &json!("Update")),
                (&json!("aa-editor"), &json!("Update")),
            ]
        );
    }

    #[test]
    fn cap_merges_the_oldest_update_entries_into_ancient_changes() {
        let times: Vec<String> = (0..11).map(at).collect();
        let mut live = update(None, object(json!({ "f0": 0 })), &write("m00", &times[0]));
        for (i, time) in times.iter().enumerate().skip(1) {
            let mut edited = live.clone();
            edited["spec"][format!("f{i}")] = json!(i);
            live = update(Some(&live), edited, &write(&format!("m{i:02}"), time));
        }
        assert_eq!(entries(&live).len(), 10);
        let ancient = entry(&live, "ancient-changes", "Update").unwrap();
        assert_eq!(ancient["fieldsV1"], json!({ "f:spec": { ".": {}, "f:f0": {}, "f:f1": {} } }));
        assert_eq!(ancient["time"], at(1));
        assert!(entry(&live, "m00", "Update").is_none() && entry(&live, "m01", "Update").is_none());
    }

    #[test]
    fn manager_from_user_agent_takes_the_printable_prefix() {
        // apiserver/pkg/endpoints/handlers/create.go prefixFromUserAgent.
        assert_eq!(manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"), "kubectl");
        assert_eq!(manager_from_user_agent("my tool\t\u{7}x/1"), "my toolx");
        assert_eq!(manager_from_user_agent(&"a".repeat(200)).len(), 128);
        assert_eq!(manager_from_user_agent(""), "");
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        let schema = schema();
        let typed = Write { schema: Some(&schema), ..write("m", "t") };
        for shape in [json!(null), json!([1]), json!("x"), json!({ "metadata": "x" }), json!({ "metadata": [] })] {
            let _ = apply(Some(&shape), &shape, &write("m", "t"), false);
            let _ = update(Some(&shape), shape.clone(), &write("m", "t"));
            let _ = fields_v1(&shape, Some(&schema));
        }
        let bad_item = object(json!({ "ports": [{ "port": 1 }], "tags": [{ "a": 1 }, null] }));
        let err = apply(Some(&bad_item), &object(json!({})), &typed, false).unwrap_err();
        assert!(err.to_string().starts_with("failed to create typed live object"), "{err}");
        assert!(update(Some(&bad_item), bad_item.clone(), &typed)["metadata"].get("managedFields").is_none());
        let mut garbage = object(json!({}));
        garbage["metadata"]["managedFields"] = json!([{ "manager": "m", "operation": "Apply", "apiVersion": "v1" }]);
        let err = apply(Some(&garbage), &object(json!({})), &typed, false).unwrap_err();
        assert_eq!(err.to_string(), "failed to decode managed fields: missing fieldsType in managed fields entry 0");
        let odd = object(json!({ "m": { "k": [null, { "x": 1 }] }, "s": 1 }));
        let live = update(None, odd.clone(), &write("m", "t"));
        let flipped = object(json!({ "m": 1, "s": { "deep": [1] } }));
        let _ = apply(Some(&live), &flipped, &write("n", "t"), true).unwrap();
    }
}
