//! The emulator behaves as the API server does where the operator and the suite depend on it.

#[path = "../../support/kubelet_csr.rs"]
mod kubelet_csr;

use apiserver_emulator::Emulator;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use kubelet_csr::kubelet_csr;
use serde_json::{Value, json};

async fn start() -> (Emulator, Client) {
    let emulator = Emulator::start(None).await.unwrap();
    let config = Kubeconfig::from_yaml(&emulator.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
    // A 429 is an answer here (an eviction refused), not a load to wait out.
    config.default_retry = false;
    (emulator, Client::try_from(config).unwrap())
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

async fn raw(client: &Client, method: &str, path: &str) -> Value {
    let request = http::Request::builder().method(method).uri(path).body(Vec::new()).unwrap();
    client.request::<Value>(request).await.unwrap()
}

#[tokio::test]
async fn lists_by_label_and_resumes_watches_until_the_history_is_compacted() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &config_map("a", json!({"team": "x"}))).await.unwrap();
    api.create(&PostParams::default(), &config_map("b", json!({"team": "y"}))).await.unwrap();
    let listed = api.list(&kube::api::ListParams::default().labels("team=x")).await.unwrap();
    assert_eq!(listed.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["a"]);
    let version = listed.metadata.resource_version.unwrap();

    api.create(&PostParams::default(), &config_map("c", json!({"team": "x"}))).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let events: Vec<(String, String)> = api
        .watch(&WatchParams::default().labels("team=x").timeout(1), &version)
        .await
        .unwrap()
        .take(2)
        .map_ok(|event| match event {
            WatchEvent::Added(o) => ("ADDED".into(), o.name_any()),
            WatchEvent::Deleted(o) => ("DELETED".into(), o.name_any()),
            other => (format!("{other:?}"), String::new()),
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events, [("ADDED".into(), "c".into()), ("DELETED".into(), "a".into())]);

    raw(&client, "POST", "/emulator/compact").await;
    let mut stream = api.watch(&WatchParams::default().timeout(1), &version).await.unwrap().boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_stale_writes_and_keeps_status_to_its_subresource() {
    let (_emulator, client) = start().await;
    let api: Api<Namespace> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap())
        .await
        .unwrap();
    let mut first = created.clone();
    first.labels_mut().insert("a".into(), "1".into());
    api.replace("team", &PostParams::default(), &first).await.unwrap();
    let mut stale = created;
    stale.labels_mut().insert("b".into(), "2".into());
    let error = api.replace("team", &PostParams::default(), &stale).await.unwrap_err();
    assert!(matches!(error, kube::Error::Api(ref e) if e.code == 409), "{error}");

    let status = json!({"status": {"phase": "Terminating"}, "metadata": {"labels": {"ignored": "yes"}}});
    let patched = api.patch_status("team", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    assert_eq!(patched.status.as_ref().unwrap().phase.as_deref(), Some("Terminating"));
    assert!(!patched.labels().contains_key("ignored"), "a status write changes only the status");
}

#[tokio::test]
async fn holds_objects_with_finalizers_and_collects_what_they_own() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut owner = config_map("owner", json!({}));
    owner.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let mut child = config_map("child", json!({}));
    child.metadata.owner_references =
        Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(), "controller": true
    })).unwrap()]);
    api.create(&PostParams::default(), &child).await.unwrap();

    api.delete("owner", &DeleteParams::default()).await.unwrap();
    let held = api.get("owner").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(api.get_opt("child").await.unwrap().is_some(), "nothing is collected while the owner is held");

    let release = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/hold"}, {"op": "remove", "path": "/metadata/finalizers/0"}]);
    api.patch("owner", &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(release).unwrap()))
        .await
        .unwrap();
    assert!(api.get_opt("owner").await.unwrap().is_none());
    assert!(api.get_opt("child").await.unwrap().is_none(), "the owned object is collected");
}

#[tokio::test]
async fn a_namespace_terminates_until_its_last_finalizer_is_removed() {
    let (_emulator, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let team: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces.create(&PostParams::default(), &team).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut held = config_map("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.create(&PostParams::default(), &config_map("free", json!({}))).await.unwrap();

    namespaces.delete("team", &DeleteParams::default()).await.unwrap();
    let terminating = namespaces.get("team").await.unwrap();
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert!(api.get_opt("free").await.unwrap().is_none());
    assert!(api.get("held").await.unwrap().metadata.deletion_timestamp.is_some(), "held by its finalizer");
    let error = api.create(&PostParams::default(), &config_map("late", json!({}))).await.unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref e) if e.code == 403
            && e.message.contains("unable to create new content in namespace team because it is being terminated")),
        "{error}"
    );

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release)).await.unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
    assert!(namespaces.get_opt("team").await.unwrap().is_none(), "gone with its last object");
}

#[tokio::test]
async fn validates_custom_resources_against_their_crd_and_serves_tables() {
    let (_emulator, client) = start().await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for (_, crd) in catalyst_core::crd::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let hosts: Api<catalyst_api::CatalystHost> = Api::all(client.clone());
    let host: Value = json!({"apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": "h"},
        "spec": {"nodeName": "n", "capacity": {"cpu": 8, "memory": "16Gi"}}});
    let created = hosts.create(&PostParams::default(), &serde_json::from_value(host.clone()).unwrap()).await.unwrap();
    assert_eq!(created.spec.reserved.memory.0, "0", "schema defaults are applied");
    assert!(created.spec.schedulable);

    let dynamic: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &kube::api::ApiResource::erase::<catalyst_api::CatalystHost>(&()));
    // An unknown field is dropped by default (`fieldValidation=Warn`), refused when the client
    // asks for strict validation, as kubectl does (k8s.io/apiserver v0.32 handlers/rest.go).
    let mut unknown = host.clone();
    unknown["metadata"]["name"] = json!("u");
    unknown["spec"]["capacty"] = json!({});
    let strict = http::Request::post("/apis/catalyst.io/v1alpha1/catalysthosts?fieldValidation=Strict")
        .body(serde_json::to_vec(&unknown).unwrap())
        .unwrap();
    let error = client.request::<Value>(strict).await.unwrap_err();
    assert!(error.to_string().contains(r#"strict decoding error: unknown field "spec.capacty""#), "{error}");
    assert!(matches!(error, kube::Error::Api(ref status) if status.code == 400), "{error}");
    let unknown: kube::api::DynamicObject = serde_json::from_value(unknown).unwrap();
    let pruned = dynamic.create(&PostParams::default(), &unknown).await.unwrap();
    assert!(pruned.data["spec"].get("capacty").is_none(), "pruned: {:?}", pruned.data);
    let mut broken = host;
    broken["metadata"]["name"] = json!("b");
    broken["spec"]["reserved"] = json!({"cpu": 8, "memory": "1Gi"});
    let error =
        dynamic.create(&PostParams::default(), &serde_json::from_value(broken.clone()).unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("reserved cpu must be less than capacity cpu"), "{error}");
    // A broken pattern does not keep the rules from running; a wrong type does, and says so
    // (a v1.32 API server's words, seen with kubectl).
    broken["spec"]["capacity"]["memory"] = json!("16GB");
    let error =
        dynamic.create(&PostParams::default(), &serde_json::from_value(broken.clone()).unwrap()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("spec.capacity.memory in body should match"), "{message}");
    assert!(message.contains("reserved cpu must be less than capacity cpu"), "{message}");
    broken["spec"]["capacity"]["cpu"] = json!("x");
    let error = dynamic.create(&PostParams::default(), &serde_json::from_value(broken).unwrap()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(
            r#"spec.capacity.cpu: Invalid value: "string": spec.capacity.cpu in body must be of type integer: "string""#
        ),
        "{message}"
    );
    assert!(message.contains(r#"<nil>: Invalid value: "null": some validation rules were not checked"#), "{message}");
    assert!(!message.contains("reserved cpu must be less"), "{message}");

    let request = http::Request::get("/apis/catalyst.io/v1alpha1/catalysthosts")
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: Value = client.request(request).await.unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], "h");
    assert_eq!(table["rows"][0]["cells"][1], "n", "the Node printer column");
}

#[tokio::test]
async fn injects_faults_and_counts_requests() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let fault = json!({"method": "POST", "pathContains": "/configmaps", "code": 500, "times": 1});
    let request = http::Request::post("/emulator/faults").body(serde_json::to_vec(&fault).unwrap()).unwrap();
    client.request::<Value>(request).await.unwrap();
    assert!(api.create(&PostParams::default(), &config_map("x", json!({}))).await.is_err());
    api.create(&PostParams::default(), &config_map("x", json!({}))).await.unwrap();
    let counts = raw(&client, "GET", "/emulator/requests").await;
    assert_eq!(counts["POST configmaps"], 2);
}

/// As kube-apiserver answers `Accept: ...;as=PartialObjectMetadataList` and
/// `as=PartialObjectMetadata`: names, labels and owners, never the body, so a controller that
/// watches its children by metadata caches no Secret data and no spec.
#[tokio::test]
async fn metadata_reads_return_metadata_only() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &config_map("a", json!({"team": "x"}))).await.unwrap();
    let accept = |request: http::Request<Vec<u8>>, mime: &str| {
        let (mut parts, body) = request.into_parts();
        parts.headers.insert("accept", mime.parse().unwrap());
        http::Request::from_parts(parts, body)
    };
    let list = http::Request::get("/api/v1/namespaces/default/configmaps").body(Vec::new()).unwrap();
    let list: Value =
        client.request(accept(list, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")).await.unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["team"], "x");
    assert!(list["items"][0].get("data").is_none(), "{list}");

    let version = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "w"}}))).await.unwrap();
    let events: Vec<_> = api
        .watch_metadata(&WatchParams::default().timeout(1), &version)
        .await
        .unwrap()
        .take(1)
        .try_collect()
        .await
        .unwrap();
    assert!(matches!(&events[0], WatchEvent::Modified(m) if m.metadata.name.as_deref() == Some("a")), "{events:?}");
    let watch = http::Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&resourceVersion={version}"
    ))
    .body(Vec::new())
    .unwrap();
    let mut lines = client
        .request_events::<Value>(accept(watch, "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"))
        .await
        .unwrap()
        .boxed();
    let Some(WatchEvent::Modified(object)) = lines.try_next().await.unwrap() else { panic!("expected MODIFIED") };
    assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
    assert!(object.get("data").is_none(), "{object}");
}

/// A Secret's `stringData` is written into `data` over the same keys and never stored, as the
/// API server converts it; code that reads `data` sees what a user wrote as `stringData`.
#[tokio::test]
async fn a_secrets_string_data_lands_in_its_data() {
    use k8s_openapi::api::core::v1::Secret;
    let (_emulator, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "join"},
        "data": {"token": "b2xk", "kept": "a2VwdA=="},
        "stringData": {"token": "abcdef.0123456789abcdef"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &secret).await.unwrap();
    let stored = api.get("join").await.unwrap();
    let data = stored.data.unwrap();
    assert_eq!(data["token"].0, b"abcdef.0123456789abcdef");
    assert_eq!(data["kept"].0, b"kept");
    assert!(stored.string_data.is_none());
    let patch = json!({"stringData": {"token": "new"}});
    let patched = api.patch("join", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    assert_eq!(patched.data.unwrap()["token"].0, b"new");
}

/// A client that authenticates with `token` as a bearer token.
async fn as_token(emulator: &Emulator, token: &str) -> Client {
    let mut config = Kubeconfig::from_yaml(&emulator.kubeconfig()).unwrap();
    config.auth_infos[0].auth_info.as_mut().unwrap().token = Some(token.to_string().into());
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

/// A bootstrap-token Secret of the API server's format (k8s.io/cluster-bootstrap `token/api/types.go`).
fn bootstrap_token(id: &str, secret: &str, expiration: &str, groups: &str) -> k8s_openapi::api::core::v1::Secret {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": id, "token-secret": secret, "expiration": expiration,
                       "usage-bootstrap-authentication": "true", "auth-extra-groups": groups}
    }))
    .unwrap()
}

/// The bootstrap-token authenticator (kubernetes `plugin/pkg/auth/authenticator/token/bootstrap/
/// bootstrap.go`): a valid token is `system:bootstrap:<id>` with `system:bootstrappers` and its
/// extra groups; an unknown token, a wrong secret or an expired token gets 401. A CSR records
/// who made it, whatever its body says (`pkg/registry/certificates/certificates/strategy.go`).
#[tokio::test]
async fn bootstrap_tokens_authenticate_and_a_csr_records_its_real_requester() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let (emulator, admin) = start().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), "kube-system");
    let groups = "system:bootstrappers:catalyst:vm-nodes";
    secrets
        .create(&PostParams::default(), &bootstrap_token("abcdef", "0123456789abcdef", "2099-01-01T00:00:00Z", groups))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &bootstrap_token("expird", "0123456789abcdef", "2020-01-01T00:00:00Z", groups))
        .await
        .unwrap();

    let token = as_token(&emulator, "abcdef.0123456789abcdef").await;
    let csrs: Api<CertificateSigningRequest> = Api::all(token);
    // The body claims another requester; the server records the real one.
    let mut claiming = kubelet_csr("node-csr-a", "system:node:api-a.team");
    claiming.spec.username = Some("system:admin".into());
    claiming.spec.groups = Some(vec!["system:masters".into()]);
    let created = csrs.create(&PostParams::default(), &claiming).await.unwrap();
    assert_eq!(created.spec.username.as_deref(), Some("system:bootstrap:abcdef"), "the requester, not the body's");
    assert_eq!(
        created.spec.groups.unwrap(),
        ["system:bootstrappers", "system:bootstrappers:catalyst:vm-nodes", "system:authenticated"]
    );
    for refused in ["abcdef.ffffffffffffffff", "zzzzzz.0123456789abcdef", "expird.0123456789abcdef", "not-a-token"] {
        let client = as_token(&emulator, refused).await;
        let error = Api::<CertificateSigningRequest>::all(client).list(&Default::default()).await.unwrap_err();
        assert!(matches!(&error, kube::Error::Api(s) if s.code == 401), "{refused}: {error}");
    }
    // The request must be a PEM certificate request.
    let mut garbage = kubelet_csr("node-csr-b", "system:node:api-a.team");
    garbage.spec.request = k8s_openapi::ByteString(
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".to_vec(),
    );
    let error =
        Api::<CertificateSigningRequest>::all(admin).create(&PostParams::default(), &garbage).await.unwrap_err();
    assert!(matches!(&error, kube::Error::Api(s) if s.code == 422 && s.message.contains("spec.request")), "{error}");
}

/// Approval is a subresource that writes the conditions alone; Approved and Denied exclude each
/// other, and a decision made stays (`pkg/apis/certificates/validation/validation.go`).
#[tokio::test]
async fn a_csr_is_decided_through_its_approval_subresource_once() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let (_emulator, client) = start().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let mut csr = csrs.create(&PostParams::default(), &kubelet_csr("node-csr-c", "system:node:n")).await.unwrap();
    let decide = |csr: &CertificateSigningRequest, types: &[&str]| {
        let mut decided = csr.clone();
        decided.spec.signer_name = "example.com/tampered".into();
        decided.status = serde_json::from_value(json!({"conditions":
            types.iter().map(|t| json!({"type": t, "status": "True", "reason": "Test"})).collect::<Vec<_>>()}))
        .unwrap();
        decided
    };
    let both = csrs
        .replace_subresource("approval", "node-csr-c", &PostParams::default(), &decide(&csr, &["Approved", "Denied"]))
        .await;
    assert!(
        matches!(&both, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("mutually exclusive")),
        "{both:?}"
    );
    csr = csrs
        .replace_subresource("approval", "node-csr-c", &PostParams::default(), &decide(&csr, &["Approved"]))
        .await
        .unwrap();
    assert_eq!(csr.spec.signer_name, "kubernetes.io/kube-apiserver-client-kubelet", "only the conditions change");
    assert_eq!(csr.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].type_, "Approved");
    let undone =
        csrs.replace_subresource("approval", "node-csr-c", &PostParams::default(), &decide(&csr, &["Denied"])).await;
    assert!(
        matches!(&undone, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("may not remove")),
        "{undone:?}"
    );
}

/// The eviction subresource (kubernetes `pkg/registry/core/pod/storage/eviction.go`): a pod is
/// deleted unless a PodDisruptionBudget selecting it allows no disruption, which is 429; a
/// Pending pod is evicted whatever its budget says.
#[tokio::test]
async fn an_eviction_respects_the_pods_disruption_budget() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let (_emulator, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, phase: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"catalyst.io/service-group": "sms"}},
            "spec": {"containers": [{"name": "sms", "image": "sms"}]}, "status": {"phase": phase}}))
        .unwrap()
    };
    for (name, phase) in [("sms-1", "Running"), ("sms-2", "Running"), ("sms-3", "Pending")] {
        pods.create(&PostParams::default(), &pod(name, phase)).await.unwrap();
        let mut created = pods.get(name).await.unwrap();
        created.status = pod(name, phase).status;
        pods.replace_status(name, &PostParams::default(), &created).await.unwrap();
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let budget: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "sms"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"catalyst.io/service-group": "sms"}}}}))
    .unwrap();
    budgets.create(&PostParams::default(), &budget).await.unwrap();
    let refused = pods.evict("sms-1", &Default::default()).await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 429 && s.message.contains("disruption budget")),
        "{refused}"
    );
    assert!(pods.get_opt("sms-1").await.unwrap().is_some(), "not evicted");
    pods.evict("sms-3", &Default::default()).await.unwrap();
    assert!(pods.get_opt("sms-3").await.unwrap().is_none(), "a Pending pod goes whatever the budget says");
    let mut allowing = budgets.get("sms").await.unwrap();
    allowing.status = serde_json::from_value(json!({"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
        "expectedPods": 2}))
    .unwrap();
    budgets.replace_status("sms", &PostParams::default(), &allowing).await.unwrap();
    pods.evict("sms-1", &Default::default()).await.unwrap();
    assert!(pods.get_opt("sms-1").await.unwrap().is_none());
}

/// Server-side apply as the API server does it (https://kubernetes.io/docs/reference/using-api/server-side-apply/,
/// and `ssa`'s unit tests for the rules one by one): every write to a child is an apply, so what
/// a manager stops sending must go, another manager's fields must stay, and a field two
/// managers want differently is a conflict unless forced.
#[tokio::test]
async fn server_side_apply_removes_what_a_manager_stops_sending_and_reports_conflicts() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let apply = |manager: &'static str, force: bool, body: Value| {
        let api = api.clone();
        async move {
            let mut params = PatchParams::apply(manager);
            params.force = force;
            let mut body = body;
            body["apiVersion"] = json!("v1");
            body["kind"] = json!("ConfigMap");
            body["metadata"]["name"] = json!("applied");
            api.patch("applied", &params, &Patch::Apply(&body)).await
        }
    };
    apply("operator", false, json!({"metadata": {"labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}})).await.unwrap();
    apply("team", false, json!({"metadata": {"labels": {"b": "2"}}, "data": {"z": "3"}})).await.unwrap();
    let applied =
        apply("operator", false, json!({"metadata": {"labels": {"a": "1"}}, "data": {"x": "1"}})).await.unwrap();
    let data = applied.data.clone().unwrap_or_default();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["x", "z"], "y dropped by its manager, z kept as the team's");
    assert_eq!(applied.labels().len(), 2, "{:?}", applied.labels());
    let managers: Vec<(String, String)> = applied
        .managed_fields()
        .iter()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect();
    assert_eq!(managers, [("operator".into(), "Apply".into()), ("team".into(), "Apply".into())]);

    let error = apply("team", false, json!({"data": {"x": "9", "z": "3"}})).await.unwrap_err();
    let kube::Error::Api(status) = &error else { panic!("{error}") };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{error}");
    assert!(status.message.contains(r#"conflict with "operator""#) && status.message.contains(".data.x"), "{error}");
    let forced = apply("team", true, json!({"data": {"x": "9", "z": "3"}})).await.unwrap();
    assert_eq!(forced.data.unwrap()["x"], "9");

    // A merge patch is an update: its manager now owns what it changed, and an apply that
    // stops sending that field no longer removes it.
    let edit = PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() };
    api.patch("applied", &edit, &Patch::Merge(json!({"metadata": {"labels": {"a": "edited"}}}))).await.unwrap();
    let applied = apply("operator", true, json!({"data": {}})).await.unwrap();
    assert_eq!(applied.labels().get("a").map(String::as_str), Some("edited"), "kept as kubectl-edit's");
    assert!(
        applied
            .managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("kubectl-edit") && m.operation.as_deref() == Some("Update"))
    );

    let without_manager = api
        .patch("applied", &PatchParams::default(), &Patch::Apply(&json!({"apiVersion": "v1", "kind": "ConfigMap"})))
        .await
        .unwrap_err();
    assert!(without_manager.to_string().contains("fieldManager: Required value"), "{without_manager}");
}
