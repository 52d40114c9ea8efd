//! A Kubernetes API server emulator for Catalyst's end-to-end tests. It serves, over plain
//! HTTP on 127.0.0.1, the subset of the Kubernetes API that the operator, the suite and
//! kubectl use; README.md lists every way it differs from a real API server.

pub mod auth;
pub mod cel_cost;
pub mod certificates;
pub mod eviction;
pub mod openapi;
pub mod resources;
pub mod select;
pub mod ssa;
pub mod store;
pub mod structural;

use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use resources::{Resource, Target};
use select::Selector;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{ApiError, Store};
use structural::FieldValidation;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A fault to inject: the next `times` requests whose method and path match get `code`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: String,
    pub code: u16,
    pub times: u32,
}

struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    /// Requests served, by `METHOD plural` (`WATCH plural` for watches).
    counts: Mutex<BTreeMap<String, u64>>,
    /// Requests served, by the `User-Agent` they carried (an API server's audit log records it).
    user_agents: Mutex<BTreeMap<String, u64>>,
}

/// A running emulator; it stops when dropped.
pub struct Emulator {
    pub address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Emulator {
    /// Starts on a free port of 127.0.0.1 (or `address`).
    pub async fn start(address: Option<SocketAddr>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            faults: Mutex::default(),
            counts: Mutex::default(),
            user_agents: Mutex::default(),
        });
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { address, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig pointing at the emulator (no credentials: it does no authentication).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\nusers:\n- name: emulator\n  user: {{}}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\n",
            self.url()
        )
    }
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).expect("JSON"))).boxed_unsync())
        .expect("a valid response")
}

fn error(e: ApiError) -> Response<Body> {
    respond(e.code, &e.status())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(request: &Request<Incoming>) -> BTreeMap<String, String> {
    request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .or_else(|_| catalyst_core::yaml::from_slice(bytes))
        .map_err(|e| ApiError::new(400, "BadRequest", format!("the body is neither JSON nor YAML: {e}")))
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let params = query(&request);
    let headers = request.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();

    match (method.as_str(), path.as_str()) {
        ("GET", "/version") => {
            return respond(
                200,
                &json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0-catalyst-emulator", "platform": "linux/amd64"}),
            );
        }
        ("GET", "/healthz" | "/readyz" | "/livez") => return respond(200, &json!("ok")),
        ("GET", "/openapi/v3") => return respond(200, &openapi::index(&shared.store.lock().unwrap().resources)),
        ("GET", _) if path.starts_with("/openapi/v3/") => {
            let group_version = path.trim_start_matches("/openapi/v3/");
            return match openapi::document(&shared.store.lock().unwrap().resources, group_version) {
                Some(document) => respond(200, &document),
                None => error(ApiError::not_found(group_version)),
            };
        }
        ("POST", "/emulator/faults") => {
            return match serde_json::from_slice::<Fault>(&bytes) {
                Ok(fault) => {
                    shared.faults.lock().unwrap().push(fault);
                    respond(201, &json!({}))
                }
                Err(e) => error(ApiError::new(400, "BadRequest", e.to_string())),
            };
        }
        ("DELETE", "/emulator/faults") => {
            shared.faults.lock().unwrap().clear();
            return respond(200, &json!({}));
        }
        ("POST", "/emulator/compact") => {
            shared.store.lock().unwrap().compact();
            return respond(200, &json!({}));
        }
        ("GET", "/emulator/requests") => return respond(200, &json!(*shared.counts.lock().unwrap())),
        ("GET", "/emulator/user-agents") => return respond(200, &json!(*shared.user_agents.lock().unwrap())),
        _ => {}
    }
    if let Some(Target::Object { plural, .. }) = resources::parse_path(&path) {
        let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
        let verb = if watching { "WATCH" } else { method.as_str() };
        *shared.counts.lock().unwrap().entry(format!("{verb} {plural}")).or_insert(0) += 1;
        *shared.user_agents.lock().unwrap().entry(header("user-agent")).or_insert(0) += 1;
    }
    if let Some(code) = injected_fault(&shared, &method, &path) {
        let reason = if code == 409 { "Conflict" } else { "InternalError" };
        return error(ApiError::new(code, reason, format!("injected fault {code} for {method} {path}")));
    }
    let Some(target) = resources::parse_path(&path) else {
        return error(ApiError::not_found("the server could not find the requested resource"));
    };
    let user = match auth::authenticate(&shared.store.lock().unwrap(), &header("authorization")) {
        Ok(user) => user,
        Err(e) => return error(e),
    };
    match target {
        Target::Discovery { group, version, core } => discovery(&shared, group, version, core),
        Target::Object { group, version, plural, namespace, name, subresource } => {
            let resource = shared.store.lock().unwrap().resource(&group, &version, &plural).cloned();
            let Some(resource) = resource else {
                return error(ApiError::not_found("the server could not find the requested resource"));
            };
            let namespace = if resource.namespaced { namespace } else { None };
            let shape = Shape::from_accept(&header("accept"));
            let field_validation = FieldValidation::from_query(params.get("fieldValidation").map(String::as_str));
            let call = Call {
                shared: &shared,
                resource: &resource,
                namespace: namespace.as_deref(),
                name: name.as_deref(),
                field_validation,
                field_manager: params.get("fieldManager").filter(|m| !m.is_empty()).cloned(),
                agent: ssa::manager_from_user_agent(&header("user-agent")),
                force: params.get("force").is_some_and(|f| f == "true"),
            };
            let status_only = subresource.as_deref() == Some("status");
            if subresource.as_deref() == Some("eviction") && resource.plural == "pods" && method == Method::POST {
                let evicted = eviction::evict(
                    &mut shared.store.lock().unwrap(),
                    namespace.as_deref().unwrap_or("default"),
                    name.as_deref().unwrap_or_default(),
                );
                return evicted.map(|status| respond(201, &status)).unwrap_or_else(error);
            }
            if subresource.as_deref() == Some("approval") {
                return match (method, resource.plural == certificates::PLURAL, parse_body(&bytes)) {
                    (Method::PUT, true, Ok(body)) => call.approve(&body),
                    (_, _, Err(e)) => error(e),
                    _ => error(ApiError::new(405, "MethodNotAllowed", format!("{path} does not support this method"))),
                };
            }
            match (method, name.is_some()) {
                (Method::GET, true) => call.get(shape),
                (Method::GET, false) if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) => {
                    call.watch(&params, shape)
                }
                (Method::GET, false) => call.list(&params, shape),
                (Method::POST, false) => match parse_body(&bytes) {
                    Ok(mut body) => {
                        if resource.plural == certificates::PLURAL
                            && let Err(e) = certificates::prepare_for_create(&mut body, &user)
                        {
                            return error(e);
                        }
                        let created = shared.store.lock().unwrap().create(
                            &resource.group,
                            &resource.plural,
                            namespace.as_deref(),
                            body,
                            call.writing(false, false),
                        );
                        created.map(|o| respond(201, &o)).unwrap_or_else(error)
                    }
                    Err(e) => error(e),
                },
                (Method::PUT, true) => match parse_body(&bytes) {
                    Ok(body) => call.write(
                        body.clone(),
                        status_only,
                        body["metadata"]["resourceVersion"].as_str().map(String::from),
                        call.writing(false, false),
                    ),
                    Err(e) => error(e),
                },
                (Method::PATCH, true) => match parse_body(&bytes) {
                    Ok(body) => call.patch(&header("content-type"), body, status_only),
                    Err(e) => error(e),
                },
                (Method::DELETE, true) => {
                    let deleted = shared.store.lock().unwrap().delete(
                        &resource.group,
                        &resource.plural,
                        namespace.as_deref(),
                        name.as_deref().unwrap_or_default(),
                    );
                    deleted.map(|o| respond(200, &o)).unwrap_or_else(error)
                }
                _ => error(ApiError::new(405, "MethodNotAllowed", format!("{path} does not support this method"))),
            }
        }
    }
}

fn injected_fault(shared: &Shared, method: &Method, path: &str) -> Option<u16> {
    let mut faults = shared.faults.lock().unwrap();
    let index = faults.iter().position(|f| {
        f.times > 0
            && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && path.contains(&f.path_contains)
    })?;
    faults[index].times -= 1;
    let code = faults[index].code;
    faults.retain(|f| f.times > 0);
    Some(code)
}

fn discovery(shared: &Shared, group: Option<String>, version: Option<String>, core: bool) -> Response<Body> {
    let store = shared.store.lock().unwrap();
    match (core, group, version) {
        (true, None, None) => {
            respond(200, &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
        }
        (false, None, None) => {
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in store.resources.iter().filter(|r| !r.group.is_empty()) {
                let versions = groups.entry(r.group.clone()).or_default();
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(name, versions)| {
                    let versions: Vec<Value> =
                        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
                    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            respond(200, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        (_, group, Some(version)) => {
            let group = group.unwrap_or_default();
            let resources: Vec<Value> = store
                .resources
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .flat_map(Resource::discovery)
                .collect();
            if resources.is_empty() {
                return error(ApiError::not_found("the server could not find the requested resource"));
            }
            let group_version = if group.is_empty() { version } else { format!("{group}/{version}") };
            respond(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
            )
        }
        (_, Some(group), None) => {
            let versions: Vec<Value> = store
                .resources
                .iter()
                .filter(|r| r.group == group)
                .map(|r| json!({"groupVersion": format!("{group}/{}", r.version), "version": r.version}))
                .collect();
            if versions.is_empty() {
                return error(ApiError::not_found("the server could not find the requested resource"));
            }
            respond(
                200,
                &json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]}),
            )
        }
    }
}

/// One request on one resource.
struct Call<'a> {
    shared: &'a Shared,
    resource: &'a Resource,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    /// The request's `fieldValidation`: what its writes do with unknown fields.
    field_validation: FieldValidation,
    /// The `fieldManager` the request names, if any.
    field_manager: Option<String>,
    /// The manager of a write that names none: the User-Agent's product.
    agent: String,
    /// An apply's `force`: take the fields other managers own.
    force: bool,
}

fn selectors(params: &BTreeMap<String, String>) -> Result<(Selector, Vec<(String, String)>), ApiError> {
    let labels = Selector::parse(params.get("labelSelector").map(String::as_str).unwrap_or_default())
        .map_err(|e| ApiError::new(400, "BadRequest", e))?;
    let fields = params
        .get("fieldSelector")
        .map(|f| {
            f.split(',')
                .filter(|t| !t.is_empty())
                .filter_map(|t| t.split_once('=').map(|(k, v)| (k.trim_end_matches('=').to_string(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok((labels, fields))
}

fn age(created: &Value) -> Value {
    let Some(created) = created.as_str().and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok()) else {
        return Value::Null;
    };
    let seconds = (k8s_openapi::jiff::Timestamp::now() - created).get_seconds().max(0);
    json!(match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    })
}

/// A `meta.k8s.io/v1` Table, as `kubectl get` asks for: the name, the CRD's printer columns.
/// What a read returns, as its Accept header asks (kube-apiserver v1.32,
/// `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go`, `transformObject`):
/// whole objects, a Table (kubectl get), or only metadata (`as=PartialObjectMetadata[List]`,
/// what kube's metadata watches ask for, so that a controller can cache owned children lean).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Table,
    Metadata,
}

impl Shape {
    fn from_accept(accept: &str) -> Self {
        if accept.contains("as=Table") {
            Shape::Table
        } else if accept.contains("as=PartialObjectMetadata") {
            Shape::Metadata
        } else {
            Shape::Object
        }
    }

    /// One object as this shape holds it (Tables are built from whole lists).
    fn object(self, object: &Value) -> Value {
        match self {
            Shape::Metadata => partial_object_metadata(object),
            _ => object.clone(),
        }
    }
}

fn partial_object_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

fn table(resource: &Resource, objects: &[Value], resource_version: u64) -> Value {
    let mut columns = vec![json!({"name": "Name", "type": "string", "format": "name", "description": "name"})];
    columns.extend(
        resource
            .printer_columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.type_, "format": "", "description": ""})),
    );
    if resource.printer_columns.is_empty() {
        columns.push(json!({"name": "Age", "type": "date", "format": "", "description": ""}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![object["metadata"]["name"].clone()];
            if resource.printer_columns.is_empty() {
                cells.push(age(&object["metadata"]["creationTimestamp"]));
            }
            for column in &resource.printer_columns {
                let value = select::json_path(object, &column.json_path).unwrap_or(Value::Null);
                cells.push(if column.type_ == "date" { age(&value) } else { value });
            }
            json!({"cells": cells, "object": partial_object_metadata(object)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version.to_string()},
           "columnDefinitions": columns, "rows": rows})
}

impl Call<'_> {
    fn name(&self) -> &str {
        self.name.unwrap_or_default()
    }

    fn get(&self, shape: Shape) -> Response<Body> {
        let store = self.shared.store.lock().unwrap();
        match store.get(&self.resource.group, &self.resource.plural, self.namespace, self.name()) {
            Ok(object) if shape == Shape::Table => {
                respond(200, &table(self.resource, &[object], store.resource_version()))
            }
            Ok(object) => respond(200, &shape.object(&object)),
            Err(e) => error(e),
        }
    }

    fn list(&self, params: &BTreeMap<String, String>, shape: Shape) -> Response<Body> {
        let (labels, fields) = match selectors(params) {
            Ok(s) => s,
            Err(e) => return error(e),
        };
        let store = self.shared.store.lock().unwrap();
        let items = store.list(&self.resource.group, &self.resource.plural, self.namespace, &labels, &fields);
        let version = json!({"resourceVersion": store.resource_version().to_string()});
        match shape {
            Shape::Table => return respond(200, &table(self.resource, &items, store.resource_version())),
            Shape::Metadata => {
                let items: Vec<Value> = items.iter().map(partial_object_metadata).collect();
                return respond(
                    200,
                    &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": version, "items": items}),
                );
            }
            Shape::Object => {}
        }
        respond(
            200,
            &json!({
                "kind": format!("{}List", self.resource.kind), "apiVersion": self.resource.api_version(),
                "metadata": version, "items": items,
            }),
        )
    }

    fn writing(&self, patch: bool, applied: bool) -> store::Writing {
        let manager = self.field_manager.clone().unwrap_or_else(|| self.agent.clone());
        store::Writing { field_validation: self.field_validation, patch, manager, applied }
    }

    /// A write of a whole object (PUT, or the result of a patch).
    fn write(
        &self,
        body: Value,
        status_only: bool,
        expected: Option<String>,
        writing: store::Writing,
    ) -> Response<Body> {
        let at = store::At {
            group: &self.resource.group,
            plural: &self.resource.plural,
            namespace: self.namespace,
            name: self.name(),
        };
        let updated = self.shared.store.lock().unwrap().update(&at, body, status_only, expected.as_deref(), writing);
        updated.map(|o| respond(200, &o)).unwrap_or_else(error)
    }

    /// A decision on a CertificateSigningRequest: its conditions, and nothing else.
    fn approve(&self, body: &Value) -> Response<Body> {
        let current = self.shared.store.lock().unwrap().get(
            &self.resource.group,
            &self.resource.plural,
            self.namespace,
            self.name(),
        );
        match current.and_then(|current| certificates::approve(&current, body)) {
            Ok(next) => self.write(
                next,
                true,
                body["metadata"]["resourceVersion"].as_str().map(String::from),
                self.writing(false, false),
            ),
            Err(e) => error(e),
        }
    }

    fn patch(&self, content_type: &str, patch: Value, status_only: bool) -> Response<Body> {
        let current = self.shared.store.lock().unwrap().get(
            &self.resource.group,
            &self.resource.plural,
            self.namespace,
            self.name(),
        );
        if content_type.contains("apply-patch") {
            return self.apply(current.ok(), &patch, status_only);
        }
        let mut object = match current {
            Ok(object) => object,
            Err(e) => return error(e),
        };
        let expected = patch.get("metadata").and_then(|m| m["resourceVersion"].as_str()).map(String::from);
        if content_type.contains("json-patch") {
            for op in patch.as_array().into_iter().flatten() {
                if let Err(e) = json_patch(&mut object, op) {
                    return error(e);
                }
            }
        } else {
            merge(&mut object, &patch);
        }
        self.write(object, status_only, expected, self.writing(true, false))
    }

    /// A server-side apply: the configuration merged into the live object (or created) by
    /// `ssa::apply`, with its conflicts, removals and managed fields.
    fn apply(&self, live: Option<Value>, configuration: &Value, status_only: bool) -> Response<Body> {
        // k8s.io/apimachinery v0.32 `pkg/apis/meta/v1/validation/validation.go`, ValidatePatchOptions.
        if self.field_manager.is_none() {
            let message =
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch";
            return error(ApiError::new(422, "Invalid", message));
        }
        if live.is_none() && status_only {
            return error(ApiError::not_found(&format!("{} \"{}\"", self.resource.plural, self.name())));
        }
        let writing = self.writing(true, true);
        let (api_version, time) = (self.resource.api_version(), store::now());
        let mut configuration = configuration.clone();
        configuration["metadata"]["name"] = json!(self.name());
        let fields = writing.fields(self.resource, &api_version, &time, status_only);
        let applied = match ssa::apply(live.as_ref(), &configuration, &fields, self.force) {
            Ok(applied) => applied,
            // The Status the API server answers, a conflict's causes included.
            Err(e) => return respond(e.code(), &e.status()),
        };
        match live {
            None => {
                let created = self.shared.store.lock().unwrap().create(
                    &self.resource.group,
                    &self.resource.plural,
                    self.namespace,
                    applied,
                    writing,
                );
                created.map(|o| respond(201, &o)).unwrap_or_else(error)
            }
            Some(_) => self.write(applied, status_only, None, writing),
        }
    }

    fn watch(&self, params: &BTreeMap<String, String>, shape: Shape) -> Response<Body> {
        let (labels, fields) = match selectors(params) {
            Ok(s) => s,
            Err(e) => return error(e),
        };
        let timeout = params.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800u64);
        let since = params.get("resourceVersion").and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4096);
        let frame = |value: Value| Ok(Frame::data(Bytes::from(format!("{value}\n"))));
        let (group, plural, namespace) =
            (self.resource.group.clone(), self.resource.plural.clone(), self.namespace.map(String::from));
        let wanted = move |change: &store::Change| {
            change.group == group
                && change.plural == plural
                && namespace.as_ref().is_none_or(|n| *n == change.namespace)
                && store::matches(&change.object, &labels, &fields)
        };
        let mut live = {
            let store = self.shared.store.lock().unwrap();
            let live = (store.changes.subscribe(), store.epoch.subscribe());
            let backlog: Vec<Value> = match since {
                None => {
                    let (labels, fields) = selectors(params).unwrap_or_default();
                    store
                        .list(&self.resource.group, &self.resource.plural, self.namespace, &labels, &fields)
                        .into_iter()
                        .map(|object| json!({"type": "ADDED", "object": shape.object(&object)}))
                        .collect()
                }
                Some(since) => match store.changes_since(since) {
                    Some(changes) => changes
                        .iter()
                        .filter(|c| wanted(c))
                        .map(|c| json!({"type": c.type_, "object": shape.object(&c.object)}))
                        .collect(),
                    None => {
                        let gone = ApiError::new(
                            410,
                            "Expired",
                            format!("too old resource version: {since} ({})", store.oldest_resumable),
                        );
                        vec![json!({"type": "ERROR", "object": gone.status()})]
                    }
                },
            };
            let expired = backlog.iter().any(|e| e["type"] == "ERROR");
            let last = store.resource_version();
            for event in backlog {
                let _ = sender.try_send(frame(event));
            }
            (!expired).then_some((live, last))
        };
        if let Some(((mut changes, mut epoch), mut last)) = live.take() {
            tokio::spawn(async move {
                let deadline = tokio::time::sleep(Duration::from_secs(timeout));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => return,
                        _ = epoch.changed() => return,
                        change = changes.recv() => match change {
                            Ok(change) if change.resource_version > last => {
                                last = change.resource_version;
                                if wanted(&change) && sender.send(frame(json!({"type": change.type_, "object": shape.object(&change.object)}))).await.is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                let gone = ApiError::new(410, "Expired", "the watch fell behind");
                                let _ = sender.send(frame(json!({"type": "ERROR", "object": gone.status()}))).await;
                                return;
                            }
                            Err(_) => return,
                        },
                    }
                }
            });
        }
        let stream =
            futures::stream::unfold(
                receiver,
                |mut receiver| async move { receiver.recv().await.map(|f| (f, receiver)) },
            );
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())))
            .expect("a valid response")
    }
}

/// JSON merge patch (RFC 7386); also how apply and strategic merge patches are treated.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// One JSON patch (RFC 6902) operation: test, add, remove, replace.
pub fn json_patch(target: &mut Value, op: &Value) -> Result<(), ApiError> {
    let path = op["path"].as_str().unwrap_or_default();
    let invalid = |why: &str| ApiError::new(422, "Invalid", format!("the JSON patch {op} failed: {why}"));
    if op["op"] == "test" {
        return if target.pointer(path) == Some(&op["value"])
            || (op["value"].is_null() && target.pointer(path).is_none())
        {
            Ok(())
        } else {
            Err(invalid("test failed"))
        };
    }
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| invalid("bad path"))?;
    if target.pointer(parent).is_none() && op["op"] == "add" {
        // Create missing parents, as the API server does for metadata maps.
        let mut node = &mut *target;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            node =
                node.as_object_mut().ok_or_else(|| invalid("bad path"))?.entry(part.to_string()).or_insert(json!({}));
        }
    }
    let node = target.pointer_mut(parent).ok_or_else(|| invalid("no such path"))?;
    match (op["op"].as_str(), node) {
        (Some("add" | "replace"), Value::Object(map)) => {
            map.insert(last.to_string(), op["value"].clone());
        }
        (Some("add"), Value::Array(list)) => {
            let index = if last == "-" { list.len() } else { last.parse().map_err(|_| invalid("bad index"))? };
            if index > list.len() {
                return Err(invalid("index out of range"));
            }
            list.insert(index, op["value"].clone());
        }
        (Some("replace"), Value::Array(list)) => {
            let index: usize = last.parse().map_err(|_| invalid("bad index"))?;
            *list.get_mut(index).ok_or_else(|| invalid("index out of range"))? = op["value"].clone();
        }
        (Some("remove"), Value::Object(map)) => {
            map.remove(last).ok_or_else(|| invalid("no such field"))?;
        }
        (Some("remove"), Value::Array(list)) => {
            let index: usize = last.parse().map_err(|_| invalid("bad index"))?;
            if index >= list.len() {
                return Err(invalid("index out of range"));
            }
            list.remove(index);
        }
        _ => return Err(invalid("unsupported operation")),
    }
    Ok(())
}
