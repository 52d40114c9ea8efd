//! `cargo bench --bench converge`: the real operator binary converging a generated layout on
//! the API emulator. For each N (default 100 and 1000; `CATALYST_BENCH_N=100,1000,10000` for
//! more): N/10 hosts (256 cores, 2Ti), N CatalystVMs (8 cores, 32Gi, each in a spread group of
//! ten) and N ServiceGroups (2 replicas of 1 core, 2Gi), applied before the operator starts.
//! The bench follows them with a watch. It records the time until half the VMs are placed and until everything is converged (every
//! VM applied with its phase reported, every group reported), the operator's requests and
//! writes per object until then, its requests over a steady window after
//! (`CATALYST_BENCH_STEADY_SECONDS`, default 30), its CPU time and its peak RSS; then prints a
//! table and the ratio of each tenfold step. The operator gets the one CPU the chart's limit
//! gives it (`CATALYST_BENCH_OPERATOR_CPUS` for more). Not a test: nothing here asserts a time.

use apiserver_emulator::Emulator;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator (in this process) allocates as the operator does, from mimalloc: with glibc's
/// malloc a third of its samples were spent growing and faulting in its heap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACE: &str = "bench";
const AGENT: &str = concat!("catalyst-operator/", env!("CARGO_PKG_VERSION"));

struct Figures {
    n: usize,
    half: Duration,
    converged: Duration,
    requests: u64,
    writes: u64,
    steady_requests: u64,
    steady: Duration,
    cpu: Duration,
    /// The emulator's CPU time (and the bench's watch, in the same process) until convergence.
    emulator_cpu: Duration,
    peak_rss_mib: f64,
}

fn main() {
    let sizes: Vec<usize> = std::env::var("CATALYST_BENCH_N")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("CATALYST_BENCH_N: numbers separated by commas"))
        .collect();
    let steady = Duration::from_secs(
        std::env::var("CATALYST_BENCH_STEADY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let figures: Vec<Figures> = sizes.iter().map(|&n| runtime.block_on(run(n, steady))).collect();
    println!(
        "\n| N | half of the VMs placed | converged | operator requests (writes) | per object | steady requests | operator CPU | emulator CPU | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &figures {
        let objects = (2 * f.n) as f64;
        println!(
            "| {} | {:.2} s | {:.2} s | {} ({}) | {:.2} ({:.2} writes) | {} in {} s | {:.2} s | {:.2} s | {:.0} MiB |",
            f.n,
            f.half.as_secs_f64(),
            f.converged.as_secs_f64(),
            f.requests,
            f.writes,
            f.requests as f64 / objects,
            f.writes as f64 / objects,
            f.steady_requests,
            f.steady.as_secs(),
            f.cpu.as_secs_f64(),
            f.emulator_cpu.as_secs_f64(),
            f.peak_rss_mib,
        );
    }
    for pair in figures.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let scale = b.n as f64 / a.n as f64;
        println!(
            "x{scale:.0} objects: x{:.1} time to converge, x{:.1} operator CPU, x{:.1} emulator CPU, x{:.1} peak RSS",
            b.converged.as_secs_f64() / a.converged.as_secs_f64(),
            b.cpu.as_secs_f64() / a.cpu.as_secs_f64().max(0.001),
            b.emulator_cpu.as_secs_f64() / a.emulator_cpu.as_secs_f64().max(0.001),
            b.peak_rss_mib / a.peak_rss_mib,
        );
    }
}

async fn run(n: usize, steady: Duration) -> Figures {
    let emulator = Emulator::start(None).await.unwrap();
    let dir = std::env::temp_dir().join(format!("catalyst-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig()).unwrap();
    let config = Kubeconfig::from_yaml(&emulator.kubeconfig()).unwrap();
    let client =
        Client::try_from(kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap())
            .unwrap();
    install(&client).await;
    apply_layout(&client, n).await;
    eprintln!("N = {n}: layout applied; starting the operator with {} CPU", operator_cpus());

    let (_, setup_writes) = operator_requests(&client).await;
    let started = Instant::now();
    let emulator_cpu_before = usage(std::process::id()).0;
    // A port of its own for /metrics, so the reconciles can be counted.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut operator = start_operator(&kubeconfig, &dir, metrics_port);
    let (half, converged) = watch_convergence(&client, n, started).await;
    let emulator_cpu = usage(std::process::id()).0.saturating_sub(emulator_cpu_before);
    // The tail: writes still under way after convergence are the operator's too.
    let mut before = operator_requests(&client).await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = operator_requests(&client).await;
        if now == before {
            break;
        }
        before = now;
    }
    let (requests, writes) = (before.0, before.1 - setup_writes);
    let get = http::Request::get("/emulator/requests").body(Vec::new()).unwrap();
    let counts: BTreeMap<String, u64> = client.request(get).await.unwrap();
    eprintln!("N = {n}: requests by verb and resource (the bench's own included): {counts:?}");
    tokio::time::sleep(steady).await;
    let steady_requests = operator_requests(&client).await.0 - before.0;
    let reconciles = reconciles(metrics_port);
    eprintln!("N = {n}: reconciles and their errors until the steady window's end: {reconciles:?}");
    let (cpu, peak_rss_mib) = usage(operator.id());
    let _ = operator.kill();
    let _ = operator.wait();
    let _ = std::fs::remove_dir_all(&dir);
    drop(emulator);
    eprintln!("N = {n}: converged in {converged:?}");
    Figures { n, half, converged, requests, writes, steady_requests, steady, cpu, emulator_cpu, peak_rss_mib }
}

/// Follows the VMs and groups with a watch (a list of every object each poll would cost the
/// emulator more than the operator at N = 10,000): the time half the VMs had a host, and the
/// time every VM was applied with its phase reported and every group reported.
async fn watch_convergence(client: &Client, n: usize, started: Instant) -> (Duration, Duration) {
    let vms: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("catalystvms", "CatalystVM"));
    let groups: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("servicegroups", "ServiceGroup"));
    let changes = futures::stream::select(
        watcher(vms, watcher::Config::default()).applied_objects().map_ok(|o| (true, o)).boxed(),
        watcher(groups, watcher::Config::default()).applied_objects().map_ok(|o| (false, o)).boxed(),
    );
    let (mut placed, mut applied, mut reported) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut half = None;
    let mut changes = std::pin::pin!(changes);
    while let Some((is_vm, object)) = changes.try_next().await.unwrap() {
        let name = object.name_any();
        let status = |pointer: &str| object.data.pointer(pointer).is_some();
        if is_vm {
            if status("/status/host") {
                placed.insert(name.clone());
            }
            if status("/status/virtualMachineName") {
                applied.insert(name);
            }
        } else if status("/status/observedGeneration") {
            reported.insert(name);
        }
        if half.is_none() && placed.len() * 2 >= n {
            half = Some(started.elapsed());
        }
        if applied.len() == n && reported.len() == n {
            let converged = started.elapsed();
            return (half.unwrap_or(converged), converged);
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "N = {n}: not converged in 30 minutes");
    }
    panic!("the watches ended");
}

fn resource(plural: &str, kind: &str) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "catalyst.io".into(),
        version: "v1alpha1".into(),
        api_version: "catalyst.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The CRDs, KubeVirt's VirtualMachine CRD (vendored) and the namespace.
async fn install(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("catalyst-bench").force();
    let kubevirt: CustomResourceDefinition =
        catalyst_core::yaml::from_str(include_str!("../../../vendor/kubevirt/virtualmachines-crd.yaml")).unwrap();
    for crd in catalyst_core::crd::all().into_iter().map(|(_, crd)| crd).chain([kubevirt]) {
        crds.patch(&crd.name_any(), &params, &Patch::Apply(&crd)).await.unwrap();
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    // The join credentials every VM names: without them a VM never becomes a node and its
    // groups are refused.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "catalyst-join"},
        "stringData": {"apiServerEndpoint": "10.0.0.1:6443", "token": "abcdef.0123456789abcdef", "caCertHash": "sha256:00"}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
}

/// N/10 hosts, N VMs in spread groups of ten, N groups; created 16 at a time.
async fn apply_layout(client: &Client, n: usize) {
    let hosts: Api<DynamicObject> = Api::all_with(client.clone(), &resource("catalysthosts", "CatalystHost"));
    let vms: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("catalystvms", "CatalystVM"));
    let groups: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("servicegroups", "ServiceGroup"));
    let host_count = n.div_ceil(10);
    let objects = (0..host_count)
        .map(|i| (&hosts, json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": format!("host-{i:05}")},
            "spec": {"nodeName": format!("worker-{i:05}"), "capacity": {"cpu": 256, "memory": "2Ti"}, "reserved": {"cpu": 4, "memory": "16Gi"}}
        })))
        .chain((0..n).map(|i| (&vms, json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM", "metadata": {"name": format!("vm-{i:05}"), "namespace": NAMESPACE},
            "spec": {"cpu": 8, "memory": "32Gi", "placement": {"spreadGroup": format!("spread-{:04}", i / 10)},
                     "node": {"joinSecretName": "catalyst-join", "software": {"kubernetesVersion": "v1.35"}},
                     "bootDisk": {"containerDisk": {"image": "quay.io/containerdisks/ubuntu:22.04"}}}
        }))))
        .chain((0..n).map(|i| (&groups, json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup", "metadata": {"name": format!("group-{i:05}"), "namespace": NAMESPACE},
            "spec": {"vm": format!("vm-{i:05}"), "replicas": 2, "cpu": 1, "memory": "2Gi",
                     "template": {"image": "nginxinc/nginx-unprivileged:1.27"}}
        }))));
    futures::stream::iter(objects)
        .map(|(api, object)| async move {
            let object: DynamicObject = serde_json::from_value(object).unwrap();
            api.create(&PostParams::default(), &object).await.map(|_| ())
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

fn start_operator(kubeconfig: &std::path::Path, dir: &std::path::Path, metrics_port: u16) -> Child {
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_catalyst-operator"))
        .args([
            "--leader-elect=false",
            &format!("--metrics-address=127.0.0.1:{metrics_port}"),
            &format!("--namespace={NAMESPACE}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .env("TOKIO_WORKER_THREADS", operator_cpus())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The CPUs the operator runs with (`CATALYST_BENCH_OPERATOR_CPUS`, default 1): as the chart
/// deploys it, with a limit of one CPU, where tokio starts one worker thread (it sizes its
/// pool by `std::thread::available_parallelism`, which reads the cgroup's CPU quota).
fn operator_cpus() -> String {
    std::env::var("CATALYST_BENCH_OPERATOR_CPUS").unwrap_or_else(|_| "1".into())
}

/// The operator's requests so far, and its writes (every method but GET and WATCH).
async fn operator_requests(client: &Client) -> (u64, u64) {
    let get = |path: &str| http::Request::get(path).body(Vec::new()).unwrap();
    let agents: BTreeMap<String, u64> = client.request(get("/emulator/user-agents")).await.unwrap();
    let counts: BTreeMap<String, u64> = client.request(get("/emulator/requests")).await.unwrap();
    let total = agents.get(AGENT).copied().unwrap_or(0);
    // The bench itself only reads once the operator runs; its writes came before.
    let writes =
        counts.iter().filter(|(k, _)| !k.starts_with("GET ") && !k.starts_with("WATCH ")).map(|(_, v)| v).sum::<u64>();
    (total, writes)
}

/// CPU time (user + system) and peak RSS of a process, from /proc.
fn usage(pid: u32) -> (Duration, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    // Linux counts CPU time in clock ticks of 1/100 s (USER_HZ).
    (Duration::from_millis(ticks * 10), peak_kib / 1024.0)
}

/// `catalyst_reconciles_total` and `catalyst_reconcile_errors_total` from the operator's
/// /metrics, by name and labels (`kind` and `outcome`, or `kind` and `error`).
fn reconciles(port: u16) -> BTreeMap<String, u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|line| {
            line.starts_with("catalyst_reconciles_total{") || line.starts_with("catalyst_reconcile_errors_total{")
        })
        .filter_map(|line| line.split_once("} "))
        .map(|(labels, value)| (labels.replace('"', "").replace("_total{", " "), value.trim().parse().unwrap_or(0)))
        .collect()
}
