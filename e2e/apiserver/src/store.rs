//! The emulator's state: objects by resource, a global resourceVersion, the watch history, and
//! the rules of writes (validation, defaulting, status subresources, generations, finalizers,
//! garbage collection).

use crate::resources::{self, Resource};
use crate::select::{Selector, json_path};
use crate::ssa;
use crate::structural::{self, FieldValidation};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// (group, plural, namespace, name)
pub type Key = (String, String, String, String);

/// An error as the API server reports it: an HTTP code and a `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into() }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "NotFound", format!("{what} not found"))
    }

    pub fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// One change, as a watch delivers it.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource_version: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub type_: &'static str,
    pub object: Value,
}

/// The most changes a watch can resume from; older resourceVersions get 410 Gone.
const HISTORY: usize = 50_000;

pub struct Store {
    pub resources: Vec<Resource>,
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    history: VecDeque<Arc<Change>>,
    /// The oldest resourceVersion a watch may resume from.
    pub oldest_resumable: u64,
    next_uid: u64,
    pub changes: tokio::sync::broadcast::Sender<Arc<Change>>,
    /// Bumped by a compaction; open watches end, as on an API server restart.
    pub epoch: tokio::sync::watch::Sender<u64>,
}

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an object lives: its resource, namespace and name.
pub struct At<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl Store {
    pub fn new() -> Self {
        let (changes, _) = tokio::sync::broadcast::channel(65_536);
        let mut store = Store {
            resources: resources::builtins(),
            objects: BTreeMap::new(),
            resource_version: 1,
            history: VecDeque::new(),
            oldest_resumable: 1,
            next_uid: 1,
            changes,
            epoch: tokio::sync::watch::Sender::new(0),
        };
        for namespace in ["default", "kube-system"] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            store.create("", "namespaces", None, object, Writing::default()).expect("built-in namespaces");
        }
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    fn resource_by_plural(&self, group: &str, plural: &str) -> Option<Resource> {
        self.resources.iter().find(|r| r.group == group && r.plural == plural).cloned()
    }

    pub fn get(&self, group: &str, plural: &str, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let key = (group.to_string(), plural.to_string(), namespace.unwrap_or_default().to_string(), name.to_string());
        self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(&format!("{plural} \"{name}\"")))
    }

    /// Objects of a resource, in a namespace or all, that match the selectors.
    pub fn list(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &[(String, String)],
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, ns, _), _)| g == group && p == plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .filter(|object| matches(object, labels, fields))
            .cloned()
            .collect()
    }

    /// Changes after `after` of a resource, for a resuming watch; `None` when `after` is too old.
    pub fn changes_since(&self, after: u64) -> Option<Vec<Arc<Change>>> {
        if after + 1 < self.oldest_resumable {
            return None;
        }
        Some(self.history.iter().filter(|c| c.resource_version > after).cloned().collect())
    }

    /// Forgets the watch history and ends every open watch, so watches resuming from before
    /// now get 410 Gone and must list again.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.resource_version + 1;
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    fn record(&mut self, group: &str, plural: &str, namespace: &str, type_: &'static str, object: Value) {
        let change = Arc::new(Change {
            resource_version: self.resource_version,
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            type_,
            object,
        });
        self.history.push_back(change.clone());
        if self.history.len() > HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.oldest_resumable = dropped.resource_version + 1;
        }
        let _ = self.changes.send(change);
    }

    fn stamp(&mut self, object: &mut Value) {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
    }

    /// Checks and completes a custom resource against its CRD, in the API server's order:
    /// unknown fields pruned (refused under strict field validation), defaults, the schema's
    /// value validations, then the CEL rules, unless a schema error left the object in a shape
    /// its rules were not written for (`hasBlockingErr`).
    fn admit(resource: &Resource, object: &mut Value, old: Option<&Value>, writing: &Writing) -> Result<(), ApiError> {
        if resource.group.is_empty() && resource.plural == "secrets" {
            merge_string_data(object);
        }
        let Some(compiled) = &resource.schema else { return Ok(()) };
        let schema = &compiled.tree;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let unknown = structural::prune(schema, object);
        if writing.field_validation == FieldValidation::Strict && !unknown.is_empty() {
            return Err(strict_decoding_error(resource, &name, &unknown, writing.patch));
        }
        let mut body = object.clone();
        if let Some(fields) = body.as_object_mut() {
            for key in ["apiVersion", "kind", "metadata"] {
                fields.remove(key);
            }
        }
        let defaulted = kube::core::cel::apply_defaults(schema, &body);
        let violations = structural::validate(schema, &defaulted, &compiled.patterns);
        let mut causes: Vec<String> = violations.iter().map(ToString::to_string).collect();
        if violations.iter().any(structural::Violation::blocks_rules) {
            // As a v1.32 API server words it: `<nil>: Invalid value: "null": some validation rules ...`.
            causes.push(format!("<nil>: Invalid value: \"null\": {RULES_NOT_CHECKED}"));
        } else {
            let old_body = old.map(|o| {
                let mut o = o.clone();
                if let Some(fields) = o.as_object_mut() {
                    fields.remove("metadata");
                }
                o
            });
            // One validator per thread: making one registers every CEL library function anew.
            thread_local! {
                static VALIDATOR: kube::core::cel::Validator = kube::core::cel::Validator::new();
            }
            let checked = VALIDATOR.with(|v| v.validate_compiled(&compiled.rules, &defaulted, old_body.as_ref()));
            if let Err(errors) = checked {
                // kube-cel writes a root rule's field path with a leading dot; the API server does not.
                causes.extend(
                    errors
                        .iter()
                        .map(|e| format!("{}: Invalid value: {}", e.field_path.trim_start_matches('.'), e.message)),
                );
            }
        }
        if !causes.is_empty() {
            let causes = aggregate(&causes);
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("{}.{} \"{name}\" is invalid: {causes}", resource.kind, resource.group),
            ));
        }
        for (key, value) in defaulted.as_object().into_iter().flatten() {
            object[key] = value.clone();
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        mut object: Value,
        writing: Writing,
    ) -> Result<Value, ApiError> {
        let resource = self.resource_by_plural(group, plural).ok_or_else(|| ApiError::not_found(plural))?;
        let name = object["metadata"]["name"].as_str().map(String::from);
        let name = match name {
            Some(name) if !name.is_empty() => name,
            _ => match object["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05}", self.next_uid),
                None => return Err(ApiError::new(422, "Invalid", "metadata.name: Required value")),
            },
        };
        let namespace = if resource.namespaced { namespace.unwrap_or("default").to_string() } else { String::new() };
        if resource.namespaced {
            let Some(holder) = self.objects.get(&namespace_key(&namespace)) else {
                return Err(ApiError::not_found(&format!("namespaces \"{namespace}\"")));
            };
            // The NamespaceLifecycle admission plugin (k8s.io/apiserver/pkg/admission/plugin/
            // namespace/lifecycle/admission.go, v1.32): no new content while it terminates.
            if holder["metadata"].get("deletionTimestamp").is_some() {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{plural} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
                    ),
                ));
            }
        }
        let key = (group.to_string(), plural.to_string(), namespace.clone(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(409, "AlreadyExists", format!("{plural} \"{name}\" already exists")));
        }
        Self::admit(&resource, &mut object, None, &writing)?;
        if plural == "customresourcedefinitions" {
            admit_crd(&object)?;
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        object["metadata"]["name"] = json!(name);
        if resource.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.next_uid));
        self.next_uid += 1;
        object["metadata"]["creationTimestamp"] = json!(now());
        if object.get("spec").is_some() {
            object["metadata"]["generation"] = json!(1);
        }
        if let Some(fields) = object["metadata"].as_object_mut() {
            fields.remove("deletionTimestamp");
            fields.remove("resourceVersion");
        }
        if !writing.applied {
            let (api_version, time) = (resource.api_version(), now());
            object = ssa::update(None, object, &writing.fields(&resource, &api_version, &time, false));
        }
        if plural == "customresourcedefinitions" {
            object["status"] = established(&object);
            for served in resources::from_crd(&object) {
                self.resources
                    .retain(|r| !(r.group == served.group && r.version == served.version && r.plural == served.plural));
                self.resources.push(served);
            }
        }
        self.stamp(&mut object);
        self.objects.insert(key, object.clone());
        self.record(group, plural, &namespace, "ADDED", object.clone());
        Ok(object)
    }

    /// Writes a new version of an existing object (update, patch or apply), with the rules of
    /// the status subresource, generations and finalizers. `expected` is a resourceVersion
    /// precondition (409 Conflict when stale).
    pub fn update(
        &mut self,
        at: &At,
        mut object: Value,
        status_only: bool,
        expected: Option<&str>,
        writing: Writing,
    ) -> Result<Value, ApiError> {
        let At { group, plural, namespace, name } = *at;
        let resource = self.resource_by_plural(group, plural).ok_or_else(|| ApiError::not_found(plural))?;
        let namespace = if resource.namespaced { namespace.unwrap_or("default").to_string() } else { String::new() };
        let key = (group.to_string(), plural.to_string(), namespace.clone(), name.to_string());
        let old =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(&format!("{plural} \"{name}\"")))?;
        if let Some(expected) = expected.filter(|e| !e.is_empty())
            && Some(expected) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            ));
        }
        if status_only {
            let status = object.get("status").cloned();
            object = old.clone();
            match status {
                Some(status) => object["status"] = status,
                None => {
                    object.as_object_mut().map(|o| o.remove("status"));
                }
            }
        } else if resource.status_subresource {
            match old.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    object.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        // What the server owns stays the server's.
        for field in ["uid", "creationTimestamp", "name", "namespace", "deletionTimestamp", "generation"] {
            match old["metadata"].get(field) {
                Some(value) => object["metadata"][field] = value.clone(),
                None => {
                    object["metadata"].as_object_mut().map(|m| m.remove(field));
                }
            }
        }
        object["apiVersion"] = old["apiVersion"].clone();
        object["kind"] = old["kind"].clone();
        Self::admit(&resource, &mut object, Some(&old), &writing)?;
        if plural == "customresourcedefinitions" && !status_only {
            admit_crd(&object)?;
        }
        let spec_of = |o: &Value| {
            let mut o = o.clone();
            if let Some(fields) = o.as_object_mut() {
                fields.remove("metadata");
                fields.remove("status");
            }
            o
        };
        if !status_only && spec_of(&object) != spec_of(&old) && old["metadata"].get("generation").is_some() {
            object["metadata"]["generation"] = json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
        }
        if !writing.applied {
            let (api_version, time) = (resource.api_version(), now());
            object = ssa::update(Some(&old), object, &writing.fields(&resource, &api_version, &time, status_only));
        }
        object["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if object == old {
            return Ok(old);
        }
        let deleting = object["metadata"].get("deletionTimestamp").is_some();
        let finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        self.stamp(&mut object);
        if plural == "customresourcedefinitions" {
            for served in resources::from_crd(&object) {
                self.resources
                    .retain(|r| !(r.group == served.group && r.version == served.version && r.plural == served.plural));
                self.resources.push(served);
            }
        }
        self.objects.insert(key.clone(), object.clone());
        self.record(group, plural, &namespace, "MODIFIED", object.clone());
        if deleting && !finalizers {
            self.remove(&key);
        }
        Ok(object)
    }

    /// Deletes an object: marks it when finalizers hold it, else removes it and collects the
    /// objects it owns.
    pub fn delete(
        &mut self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let resource = self.resource_by_plural(group, plural).ok_or_else(|| ApiError::not_found(plural))?;
        let namespace = if resource.namespaced { namespace.unwrap_or("default").to_string() } else { String::new() };
        let key = (group.to_string(), plural.to_string(), namespace.clone(), name.to_string());
        let mut object =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(&format!("{plural} \"{name}\"")))?;
        if plural == "namespaces" {
            return Ok(self.terminate_namespace(name, object));
        }
        let finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if finalizers {
            if object["metadata"].get("deletionTimestamp").is_none() {
                object["metadata"]["deletionTimestamp"] = json!(now());
                object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                self.stamp(&mut object);
                self.objects.insert(key, object.clone());
                self.record(group, plural, &namespace, "MODIFIED", object.clone());
            }
            return Ok(object);
        }
        Ok(self.remove(&key).unwrap_or(object))
    }

    /// Deletes a namespace as the namespace controller does (k8s.io/kubernetes
    /// pkg/controller/namespace/deletion/namespaced_resources_deleter.go, v1.32): it becomes
    /// `Terminating`, everything in it is deleted, and it goes only once the last object has,
    /// so an object whose finalizer is never removed keeps it `Terminating` for good.
    fn terminate_namespace(&mut self, name: &str, mut namespace: Value) -> Value {
        if namespace["metadata"].get("deletionTimestamp").is_none() {
            namespace["metadata"]["deletionTimestamp"] = json!(now());
            namespace["status"]["phase"] = json!("Terminating");
            self.stamp(&mut namespace);
            self.objects.insert(namespace_key(name), namespace.clone());
            self.record("", "namespaces", "", "MODIFIED", namespace.clone());
        }
        let contained: Vec<Key> = self.objects.keys().filter(|(_, _, ns, _)| ns == name).cloned().collect();
        for (group, plural, ns, object) in contained {
            let _ = self.delete(&group, &plural, Some(&ns), &object);
        }
        self.remove_namespace_when_empty(name);
        self.objects.get(&namespace_key(name)).cloned().unwrap_or(namespace)
    }

    fn remove_namespace_when_empty(&mut self, name: &str) {
        let key = namespace_key(name);
        let terminating = self.objects.get(&key).is_some_and(|n| n["metadata"].get("deletionTimestamp").is_some());
        if terminating && !self.objects.keys().any(|(_, _, ns, _)| ns == name) {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.stamp(&mut object);
        self.record(&key.0, &key.1, &key.2, "DELETED", object.clone());
        let uid = object["metadata"]["uid"].clone();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (group, plural, namespace, name) in owned {
            let _ = self.delete(&group, &plural, Some(&namespace), &name);
        }
        if !key.2.is_empty() {
            self.remove_namespace_when_empty(&key.2);
        }
        Some(object)
    }
}

fn namespace_key(name: &str) -> Key {
    (String::new(), "namespaces".into(), String::new(), name.to_string())
}

/// Refuses a CRD whose CEL rules could cost more than the API server's budgets, as
/// apiextensions-apiserver's CRD validation does (422 Invalid, one `Forbidden` cause per rule).
/// A Secret's `stringData` is write-only: each key is written into `data` (base64), over a
/// key of the same name, and `stringData` is never stored or returned (kubernetes
/// `pkg/apis/core/v1/conversion.go`, `Convert_v1_Secret_To_core_Secret`: "StringData
/// overwrites Data").
fn merge_string_data(secret: &mut Value) {
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|s| s.remove("stringData")) else { return };
    if !secret["data"].is_object() {
        secret["data"] = serde_json::json!({});
    }
    for (key, value) in strings {
        let bytes = k8s_openapi::ByteString(value.as_str().unwrap_or_default().as_bytes().to_vec());
        secret["data"][key] = serde_json::to_value(bytes).expect("bytes serialize as base64");
    }
}

/// What the API server adds when a schema error kept it from checking the CEL rules
/// (apiextensions-apiserver v0.32 `pkg/registry/customresource/strategy.go`, `hasBlockingErr`).
const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Unknown fields under `fieldValidation=Strict`: a body that cannot be decoded (400, k8s.io/apiserver
/// v0.32 `pkg/endpoints/handlers/rest.go`, `transformDecodeError`), or a patch whose result
/// cannot (422 on the field `patch`, `handlers/patch.go`).
fn strict_decoding_error(resource: &Resource, name: &str, unknown: &[String], patch: bool) -> ApiError {
    let fields: Vec<String> = unknown.iter().map(|field| format!("unknown field {field:?}")).collect();
    let strict = format!("strict decoding error: {}", fields.join(", "));
    if patch {
        let message =
            format!("{}.{} \"{name}\" is invalid: patch: Invalid value: \"\": {strict}", resource.kind, resource.group);
        ApiError::new(422, "Invalid", message)
    } else {
        let kind = &resource.kind;
        ApiError::new(
            400,
            "BadRequest",
            format!("{kind} in version {:?} cannot be handled as a {kind}: {strict}", resource.version),
        )
    }
}

/// What a write request says beyond its body.
#[derive(Debug, Clone, Default)]
pub struct Writing {
    /// The request's `fieldValidation`: what becomes of unknown fields.
    pub field_validation: FieldValidation,
    /// The body is a patch's result, not an object the client sent whole.
    pub patch: bool,
    /// Who writes: `fieldManager`, else the User-Agent's product (`ssa::manager_from_user_agent`).
    pub manager: String,
    /// Server-side apply has already recorded the write's fields in `metadata.managedFields`.
    pub applied: bool,
}

impl Writing {
    /// The field manager's view of this write to `resource`, through `subresource`.
    pub fn fields<'a>(
        &'a self,
        resource: &'a Resource,
        api_version: &'a str,
        time: &'a str,
        status: bool,
    ) -> ssa::Write<'a> {
        let subresource = status.then_some("status");
        ssa::Write {
            manager: &self.manager,
            api_version,
            time,
            subresource,
            schema: resource.schema.as_ref().map(|s| &s.tree),
            reset_fields: ssa::custom_resource_reset_fields(subresource, resource.status_subresource),
        }
    }
}

/// The causes of a 422 as `errors.NewInvalid` prints its aggregate: one alone, several in
/// brackets (k8s.io/apimachinery v0.32 `pkg/util/errors/errors.go`, `aggregate.Error`).
fn aggregate(causes: &[String]) -> String {
    match causes {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn admit_crd(crd: &Value) -> Result<(), ApiError> {
    let refusals = crate::cel_cost::check_crd(crd);
    if refusals.is_empty() {
        return Ok(());
    }
    let causes: Vec<String> = refusals.iter().map(|r| format!("{}: Forbidden: {}", r.path, r.message)).collect();
    let causes = aggregate(&causes);
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::new(
        422,
        "Invalid",
        format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: {causes}"),
    ))
}

/// A CRD's status once it is served.
fn established(crd: &Value) -> Value {
    let time = now();
    json!({
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": time},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": time},
        ],
    })
}

/// Whether an object matches a label selector and `path=value` field selectors.
pub fn matches(object: &Value, labels: &Selector, fields: &[(String, String)]) -> bool {
    labels.matches(&object["metadata"]["labels"])
        && fields.iter().all(|(path, wanted)| {
            let value = json_path(object, &format!(".{path}"));
            match value {
                Some(Value::String(s)) => s == *wanted,
                Some(other) => wanted.parse::<Value>().is_ok_and(|w| w == other),
                None => wanted.is_empty(),
            }
        })
}
