//! What every end-to-end test stands on: a cluster (the emulator, or the one `KUBECONFIG`
//! names when `CATALYST_E2E_CLUSTER=kubeconfig`), the CRDs installed, the operator running as
//! its real binary, unique names, and waiting for the world to converge.

use apiserver_emulator::Emulator;
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::manifest;
use catalyst_e2e::{made_once, repo};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const MANAGER: &str = "catalyst-e2e";

/// The label that puts a test's CatalystHosts in the pool of that test's operator alone
/// (`--host-selector`): hosts are cluster-scoped, and on a shared cluster every test's
/// operator would otherwise place VMs on every test's hosts.
pub const POOL: &str = "catalyst.io/pool";

/// How long clean-up waits for finalizers and namespace deletion (a real namespace controller
/// takes some seconds).
const CLEAN_UP: Duration = Duration::from_secs(120);

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{:x}{}", (std::process::id() ^ nanos) & 0xffff, NEXT.fetch_add(1, Ordering::SeqCst))
}

pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    /// The API server's minor release (its `/version`).
    pub minor: u32,
    emulator: Option<Emulator>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn apply<K>(api: &Api<K>, object: &K) -> K
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let params = PatchParams::apply(MANAGER).force();
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("applying {}: {e}", object.name_any()))
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = std::env::temp_dir().join(unique("catalyst-e2e"));
        std::fs::create_dir_all(&dir).unwrap();
        let (emulator, kubeconfig) = if std::env::var("CATALYST_E2E_CLUSTER").as_deref() == Ok("kubeconfig") {
            let path = std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .expect("CATALYST_E2E_CLUSTER=kubeconfig needs KUBECONFIG");
            (None, path)
        } else {
            let emulator = Emulator::start(None).await.unwrap();
            let path = dir.join("kubeconfig");
            std::fs::write(&path, emulator.kubeconfig()).unwrap();
            (Some(emulator), path)
        };
        let config = Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
        let client = Client::try_from(config).unwrap();
        let version = client.apiserver_version().await.unwrap();
        let minor = catalyst_core::release::server_minor(&version.major, &version.minor).unwrap();
        let cluster = Cluster { client, kubeconfig, dir, minor, emulator };
        cluster.install_crds().await;
        cluster
    }

    pub fn emulated(&self) -> bool {
        self.emulator.is_some()
    }

    /// A cluster for a test that needs the emulator's own endpoints; on a real cluster `None`,
    /// and the test says it is skipped and why.
    pub async fn start_emulated(needs: &str) -> Option<Cluster> {
        let cluster = Cluster::start().await;
        if !cluster.emulated() {
            eprintln!("skipped: {needs} needs the emulator");
            return None;
        }
        Some(cluster)
    }

    async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let mut names = Vec::new();
        for (_, crd) in catalyst_core::crd::all() {
            names.push(apply(&crds, &crd).await.name_any());
        }
        // Without KubeVirt, the VirtualMachine CRD derived from KubeVirt's own OpenAPI (vendored).
        if crds.get_opt("virtualmachines.kubevirt.io").await.unwrap().is_none() {
            let text = include_str!("../../vendor/kubevirt/virtualmachines-crd.yaml");
            let crd: CustomResourceDefinition = catalyst_core::yaml::from_str(text).unwrap();
            names.push(apply(&crds, &crd).await.name_any());
        }
        // Without KubeVirt, stand-ins for its VirtualMachineInstance, whose status tests write,
        // and its VirtualMachineInstanceMigration, which tests carry out.
        let stand_ins = [
            ("virtualmachineinstances.kubevirt.io", include_str!("virtualmachineinstances-crd.yaml")),
            ("virtualmachineinstancemigrations.kubevirt.io", include_str!("virtualmachineinstancemigrations-crd.yaml")),
        ];
        for (name, text) in stand_ins {
            if crds.get_opt(name).await.unwrap().is_none() {
                let crd: CustomResourceDefinition = catalyst_core::yaml::from_str(text).unwrap();
                names.push(apply(&crds, &crd).await.name_any());
            }
        }
        for name in names {
            eventually(&format!("CRD {name} established"), Duration::from_secs(30), || {
                let crds = crds.clone();
                let name = name.clone();
                async move {
                    let crd = crds.get(&name).await.ok()?;
                    crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
                }
            })
            .await;
        }
    }

    /// A fresh namespace for one test.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = unique(prefix);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        apply(&api, &namespace).await;
        name
    }

    /// Sends a request to the emulator's own endpoints (`/emulator/...`); `None` on a real cluster.
    pub async fn emulator_call(&self, method: &str, path: &str, body: Value) -> Option<Value> {
        self.emulator.as_ref()?;
        let request =
            http::Request::builder().method(method).uri(path).body(serde_json::to_vec(&body).unwrap()).unwrap();
        Some(self.client.request::<Value>(request).await.unwrap())
    }

    /// Makes the next `times` requests `method` on paths containing `path` fail with `code`.
    pub async fn inject_fault(&self, method: &str, path: &str, code: u16, times: u32) -> bool {
        let fault = serde_json::json!({"method": method, "pathContains": path, "code": code, "times": times});
        self.emulator_call("POST", "/emulator/faults", fault).await.is_some()
    }

    /// Requests served so far, by `METHOD plural` (emulator only).
    pub async fn request_counts(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        let counts = self.emulator_call("GET", "/emulator/requests", Value::Null).await?;
        Some(serde_json::from_value(counts).unwrap())
    }

    /// The minimal layout for a test's namespace ([`Layout::minimal`]), its VM-nodes of this API
    /// server's own release, which the operator accepts whatever the server's version.
    pub fn layout(&self, namespace: &str) -> Layout {
        let mut layout = Layout::minimal(namespace);
        for vm in &mut layout.vms {
            if let Some(software) = vm.spec.node.software.as_mut() {
                software.kubernetes_version = format!("v1.{}", self.minor);
            }
        }
        layout
    }

    /// Deletes a test's Catalyst objects while its operator still runs, waits for the operator
    /// to release them (finalizers: VirtualMachines deleted, ledger entries returned), then
    /// deletes the test's hosts and waits for them to go.
    pub async fn release(&self, namespace: &str, hosts: &[CatalystHost]) {
        let groups: Api<ServiceGroup> = Api::namespaced(self.client.clone(), namespace);
        let vms: Api<CatalystVM> = Api::namespaced(self.client.clone(), namespace);
        let everything = DeleteParams::default();
        for group in groups.list(&Default::default()).await.unwrap() {
            let _ = groups.delete(&group.name_any(), &everything).await;
        }
        for vm in vms.list(&Default::default()).await.unwrap() {
            let _ = vms.delete(&vm.name_any(), &everything).await;
        }
        eventually(&format!("the operator to release every CatalystVM of {namespace}"), CLEAN_UP, || async {
            vms.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
        })
        .await;
        let host_api: Api<CatalystHost> = Api::all(self.client.clone());
        eventually("every ledger entry of the test's hosts released", CLEAN_UP, || async {
            for host in hosts {
                let status = host_api.get_opt(&host.name_any()).await.ok()?.and_then(|h| h.status);
                status.is_none_or(|s| s.vms.is_empty()).then_some(())?;
            }
            Some(())
        })
        .await;
        for host in hosts {
            let _ = host_api.delete(&host.name_any(), &everything).await;
        }
        eventually("the test's hosts gone", CLEAN_UP, || async {
            for host in hosts {
                host_api.get_opt(&host.name_any()).await.ok()?.is_none().then_some(())?;
            }
            Some(())
        })
        .await;
    }

    /// Deletes the namespace and waits until it is gone (not left `Terminating`), and the
    /// test's events kept outside it.
    pub async fn delete_namespace(&self, namespace: &str) {
        self.delete_cluster_scoped_events(namespace).await;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = api.delete(namespace, &DeleteParams::default()).await;
        eventually(&format!("namespace {namespace} gone"), CLEAN_UP, || async {
            api.get_opt(namespace).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// Leaves nothing of a test behind: its Catalyst objects released by its still running
    /// operator, its hosts and its namespace deleted, each waited for.
    pub async fn clean_up(&self, namespace: &str, hosts: &[CatalystHost]) {
        self.release(namespace, hosts).await;
        self.delete_namespace(namespace).await;
    }

    /// Events about cluster-scoped objects (the test's hosts, and on a real cluster its nodes)
    /// are kept in `default`, which outlives the test: its own go with it, found by the
    /// namespace's name, which prefixes every host and node name the test made.
    async fn delete_cluster_scoped_events(&self, namespace: &str) {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), "default");
        let prefix = format!("{namespace}-");
        for event in api.list(&Default::default()).await.map(|list| list.items).unwrap_or_default() {
            let about = event.regarding.as_ref().and_then(|r| r.name.as_deref()).unwrap_or_default();
            if about.starts_with(&prefix) {
                let _ = api.delete(&event.name_any(), &DeleteParams::default()).await;
            }
        }
    }
}

/// Writes an object's status as another actor would (a kubelet, KubeVirt): read, change, replace,
/// and again on a 409 Conflict, since on a real cluster that actor's own controllers write the
/// same object (the node lifecycle controller writes every Node's status).
pub async fn write_status<K>(api: &Api<K>, name: &str, change: impl Fn(&mut K)) -> K
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    for _ in 0..20 {
        let mut object = api.get(name).await.unwrap_or_else(|e| panic!("reading {name}: {e}"));
        change(&mut object);
        match api.replace_status(name, &Default::default(), &object).await {
            Ok(written) => return written,
            Err(kube::Error::Api(status)) if status.code == 409 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("writing the status of {name}: {error}"),
        }
    }
    panic!("writing the status of {name}: 20 conflicts in a row")
}

/// Polls `check` until it returns `Some`, or fails the test with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A layout of the minimal sample's shape, under unique names: two hosts, two VMs in a spread
/// group, a group of three replicas in each VM.
pub struct Layout {
    pub hosts: Vec<CatalystHost>,
    pub vms: Vec<CatalystVM>,
    pub groups: Vec<ServiceGroup>,
    /// The API server the VMs' join Secret names (none answers there: the VMs render as they
    /// would, and never join, unless a test boots one).
    pub join_endpoint: String,
}

impl Layout {
    pub fn minimal(namespace: &str) -> Layout {
        let text = std::fs::read_to_string(repo().join("config/samples/minimal/layout.yaml")).unwrap();
        let prefix = namespace;
        let text = text
            .replace("catalyst-demo", namespace)
            .replace("small-", &format!("{prefix}-small-"))
            .replace("worker-", &format!("{prefix}-worker-"));
        let (mut manifests, errors) = manifest::parse("minimal", &text);
        assert!(errors.is_empty(), "{errors:?}");
        for host in &mut manifests.hosts {
            host.labels_mut().insert(POOL.into(), namespace.into());
        }
        Layout {
            hosts: manifests.hosts,
            vms: manifests.vms,
            groups: manifests.groups,
            join_endpoint: "10.0.0.1:6443".into(),
        }
    }

    pub async fn apply(&self, client: &Client) {
        let hosts: Api<CatalystHost> = Api::all(client.clone());
        for host in &self.hosts {
            apply(&hosts, host).await;
        }
        // The join credentials the VMs name (a bootstrap token of kubeadm's format).
        let secrets: std::collections::BTreeSet<(String, String)> =
            self.vms.iter().filter_map(|vm| Some((vm.namespace()?, vm.spec.node.join_secret_name.clone()?))).collect();
        for (namespace, name) in secrets {
            let secret = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "stringData": {"apiServerEndpoint": self.join_endpoint, "token": "abcdef.0123456789abcdef",
                               "caCertHash": format!("sha256:{}", "0".repeat(64))}
            }))
            .unwrap();
            apply(&Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &namespace), &secret).await;
        }
        for vm in &self.vms {
            apply(&Api::<CatalystVM>::namespaced(client.clone(), &vm.namespace().unwrap()), vm).await;
        }
        for group in &self.groups {
            apply(&Api::<ServiceGroup>::namespaced(client.clone(), &group.namespace().unwrap()), group).await;
        }
    }
}

/// The operator: its real binary with a kubeconfig for the cluster, scoped to one test's
/// namespace and pool of hosts.
pub struct Operator {
    child: Option<Child>,
    args: Vec<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Operator {
    /// Starts an operator that manages `namespace` and the hosts of the pool of the same name
    /// (see [`Layout::minimal`]), and elects its leader on a Lease there.
    pub fn start(cluster: &Cluster, namespace: &str) -> Operator {
        let args = [
            format!("--namespace={namespace}"),
            format!("--host-selector={POOL}={namespace}"),
            format!("--lease-namespace={namespace}"),
            "--lease-duration-seconds=4".into(),
            "--lease-renew-seconds=1".into(),
            "--lease-renew-deadline-seconds=3".into(),
            "--metrics-address=127.0.0.1:0".into(),
            "--log-format=json".into(),
        ];
        let mut operator = Operator {
            child: None,
            args: args.to_vec(),
            kubeconfig: cluster.kubeconfig.clone(),
            log: cluster.dir.join(unique("operator.log")),
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(binary("catalyst-operator"))
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,catalyst_operator=debug,catalyst_core=debug")
            .env_remove("POD_NAME")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Kills the process at once (SIGKILL): no lease release, nothing finished.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits for it; its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The identity the process holds the Lease under (its default: the process id).
    pub fn identity(&self) -> Option<String> {
        self.child.as_ref().map(|c| format!("catalyst-operator-{}", c.id()))
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A binary of this workspace (`catalyst-operator`, `kubectl-catalyst`), from the target
/// directory this test runs from. `cargo nextest run --workspace` has built both; a run of the
/// suite alone (`cargo nextest run -p catalyst-e2e`) may not have: the first test that needs one
/// builds it, as `cargo build` would.
pub fn binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test knows its own path");
    let profile = test.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps");
    let lock = repo().join(format!("target/{name}.lock"));
    made_once(profile.join(name), &lock, &format!("building {name}"), || {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo).args(["build", "--bin", name]).current_dir(repo()).status();
        match built {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("cargo build exited with {status}")),
            Err(error) => Err(error.to_string()),
        }
    })
}
