//! A fake Kubernetes API behind kube's `Client`, for reconcile tests: it keeps objects by path,
//! answers GET, PATCH (apply, merge, JSON), PUT of status with resourceVersion checks (409 on a
//! stale one), POST of events and DELETE, and records every request so a test can assert the
//! exact calls a reconcile makes. Patches are applied with the emulator's own functions. It can
//! also hang (take requests and never answer) or fail every request with a status code.

#![allow(dead_code)]

use apiserver_emulator::{json_patch, merge};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct FakeApi {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// Each request's query string, as (`METHOD path`, query).
    queries: Arc<Mutex<Vec<(String, String)>>>,
    conflicts: Arc<Mutex<BTreeSet<String>>>,
    version: Arc<Mutex<u64>>,
    /// While set, requests are taken and never answered.
    hanging: Arc<Mutex<bool>>,
    /// While set, every request is answered with this status code.
    failing: Arc<Mutex<Option<u16>>>,
}

impl FakeApi {
    /// A client whose requests this fake answers (on the current tokio runtime).
    pub fn start() -> (Self, Client) {
        let fake = FakeApi::default();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let serving = fake.clone();
        tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                if *serving.hanging.lock().unwrap() {
                    unanswered.push(send);
                    continue;
                }
                if let Some(code) = *serving.failing.lock().unwrap() {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": "failing on purpose"});
                    let response =
                        Response::builder().status(code).body(Body::from(serde_json::to_vec(&status).unwrap()));
                    send.send_response(response.unwrap());
                    continue;
                }
                let (parts, body) = request.into_parts();
                let call = format!("{} {}", parts.method, parts.uri.path());
                serving.queries.lock().unwrap().push((call, parts.uri.query().unwrap_or_default().to_string()));
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let content_type =
                    parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let (code, answer) = serving.answer(parts.method.as_str(), parts.uri.path(), &content_type, body);
                let response =
                    Response::builder().status(code).body(Body::from(serde_json::to_vec(&answer).unwrap())).unwrap();
                send.send_response(response);
            }
        });
        (fake, Client::new(service, "default"))
    }

    /// From now on, takes requests and never answers them (or answers again, with `false`).
    pub fn hang(&self, hanging: bool) {
        *self.hanging.lock().unwrap() = hanging;
    }

    /// From now on, answers every request with `code` (or serves again, with `None`).
    pub fn fail(&self, code: Option<u16>) {
        *self.failing.lock().unwrap() = code;
    }

    pub fn insert(&self, path: &str, object: Value) {
        let object = self.stamp(object);
        self.objects.lock().unwrap().insert(path.to_string(), object);
    }

    /// The paths of every object held.
    pub fn paths(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Removes an object behind the operator's back, as another controller would.
    pub fn delete(&self, path: &str) {
        self.objects.lock().unwrap().remove(path);
    }

    /// Answers `PUT path` with 409 Conflict from now on.
    pub fn conflict_on(&self, path: &str) {
        self.conflicts.lock().unwrap().insert(path.to_string());
    }

    /// Every request so far as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(m, p, _)| format!("{m} {p}")).collect()
    }

    /// The query strings of every request `METHOD path` so far, in order.
    pub fn queries_of(&self, request: &str) -> Vec<String> {
        let queries = self.queries.lock().unwrap();
        queries.iter().filter(|(call, _)| call == request).map(|(_, query)| query.clone()).collect()
    }

    /// The body of the last request `METHOD path`.
    /// The bodies of every request `METHOD path` so far, in order.
    pub fn bodies_of(&self, request: &str) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|(m, p, _)| format!("{m} {p}") == request).map(|(_, _, b)| b.clone()).collect()
    }

    pub fn body_of(&self, request: &str) -> Option<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(m, p, _)| format!("{m} {p}") == request)
            .map(|(_, _, b)| b.clone())
    }

    /// Requests other than reads.
    pub fn writes(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| !r.starts_with("GET ")).collect()
    }

    pub fn forget_requests(&self) {
        self.requests.lock().unwrap().clear();
        self.queries.lock().unwrap().clear();
    }

    fn stamp(&self, mut object: Value) -> Value {
        let mut version = self.version.lock().unwrap();
        *version += 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if object["metadata"].get("uid").is_none() {
            object["metadata"]["uid"] = json!(format!("uid-{version}"));
        }
        object
    }

    fn answer(&self, method: &str, path: &str, content_type: &str, body: Value) -> (u16, Value) {
        self.requests.lock().unwrap().push((method.to_string(), path.to_string(), body.clone()));
        let (object_path, status) = match path.strip_suffix("/status") {
            Some(base) => (base, true),
            None => (path, false),
        };
        let current = self.get(object_path);
        let is_apply = content_type.contains("apply-patch");
        match (method, current) {
            ("GET", Some(object)) => (200, object),
            ("GET", None) if is_collection(path) => {
                // A collection: the objects one segment below the path.
                let prefix = format!("{path}/");
                let items: Vec<Value> = self
                    .objects
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(key, _)| key.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/')))
                    .map(|(_, object)| object.clone())
                    .collect();
                (200, json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}))
            }
            ("POST", _) => match body["metadata"]["name"].as_str().map(|name| format!("{path}/{name}")) {
                Some(created) if self.get(&created).is_some() => (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409}),
                ),
                Some(created) => (201, self.store(&created, body)),
                None => (201, body),
            },
            ("DELETE", Some(object)) => {
                self.objects.lock().unwrap().remove(object_path);
                (200, object)
            }
            ("PUT", Some(object)) => {
                if self.conflicts.lock().unwrap().contains(path)
                    || body["metadata"]["resourceVersion"] != object["metadata"]["resourceVersion"]
                {
                    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Conflict", "code": 409, "message": "the object has been modified"});
                    return (409, conflict);
                }
                let mut updated = object;
                if status {
                    updated["status"] = body["status"].clone();
                } else {
                    updated = body;
                }
                (200, self.store(object_path, updated))
            }
            ("PATCH", current) if current.is_some() || (is_apply && !status) => {
                let mut object = current.unwrap_or_else(|| json!({}));
                if content_type.contains("json-patch") {
                    for op in body.as_array().into_iter().flatten() {
                        if let Err(error) = json_patch(&mut object, op) {
                            return (error.code, error.status());
                        }
                    }
                } else {
                    merge(&mut object, &body);
                }
                (200, self.store(object_path, object))
            }
            _ => not_found(),
        }
    }

    fn store(&self, path: &str, object: Value) -> Value {
        let stored = self.stamp(object);
        self.objects.lock().unwrap().insert(path.to_string(), stored.clone());
        stored
    }
}

/// `/api/v1/[namespaces/NS/]PLURAL` or `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL`.
fn is_collection(path: &str) -> bool {
    let segments = path.trim_matches('/').split('/').count();
    if path.starts_with("/api/") { !segments.is_multiple_of(2) } else { segments.is_multiple_of(2) }
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}
