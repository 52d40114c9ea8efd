//! The agent against a fake kubelet (the real PodResources proto, served on a unix socket) and
//! an API server (the emulator; a real cluster with `CATALYST_E2E_CLUSTER=kubeconfig`): it
//! writes its node's report, follows the kubelet's changes, and leaves a quiet node alone.

use apiserver_emulator::Emulator;
use catalyst_agent::podresources::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use catalyst_agent::podresources::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerResources, GetPodResourcesRequest,
    GetPodResourcesResponse, ListPodResourcesRequest, ListPodResourcesResponse, PodResources,
};
use catalyst_api::CatalystNodeReport;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// A kubelet that answers with whatever pods the test sets.
#[derive(Clone, Default)]
struct FakeKubelet {
    pods: Arc<Mutex<Vec<PodResources>>>,
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(&self, _: Request<ListPodResourcesRequest>) -> Result<Response<ListPodResourcesResponse>, Status> {
        Ok(Response::new(ListPodResourcesResponse { pod_resources: self.pods.lock().unwrap().clone() }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Ok(Response::new(AllocatableResourcesResponse { cpu_ids: (2..64).collect(), ..Default::default() }))
    }

    async fn get(&self, _: Request<GetPodResourcesRequest>) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("the agent lists"))
    }
}

impl FakeKubelet {
    /// Serves on `socket` until the returned sender is dropped (a kubelet that stops: its
    /// connections close and its socket goes).
    fn serve(&self, socket: &std::path::Path) -> tokio::sync::oneshot::Sender<()> {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let service = PodResourcesListerServer::new(self.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let socket = socket.to_path_buf();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::UnixListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            let _ = std::fs::remove_file(socket);
        });
        stop
    }

    fn set(&self, pods: &[(&str, &str, &[i64])]) {
        *self.pods.lock().unwrap() = pods
            .iter()
            .map(|(name, container, cpus)| PodResources {
                name: name.to_string(),
                namespace: "billing".into(),
                containers: vec![ContainerResources {
                    name: container.to_string(),
                    cpu_ids: cpus.to_vec(),
                    ..Default::default()
                }],
            })
            .collect();
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reports_what_its_kubelet_says_and_follows_it() {
    let dir = std::env::temp_dir().join(format!("catalyst-agent-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sys/devices/system/node/node0")).unwrap();
    std::fs::create_dir_all(dir.join("sys/devices/system/node/node1")).unwrap();
    std::fs::write(dir.join("sys/devices/system/node/node0/cpulist"), "0-31\n").unwrap();
    std::fs::write(dir.join("sys/devices/system/node/node1/cpulist"), "32-63\n").unwrap();
    let (_emulator, kubeconfig) = if std::env::var("CATALYST_E2E_CLUSTER").as_deref() == Ok("kubeconfig") {
        (None, PathBuf::from(std::env::var_os("KUBECONFIG").expect("CATALYST_E2E_CLUSTER=kubeconfig needs KUBECONFIG")))
    } else {
        let emulator = Emulator::start(None).await.unwrap();
        std::fs::write(dir.join("kubeconfig"), emulator.kubeconfig()).unwrap();
        (Some(emulator), dir.join("kubeconfig"))
    };
    let config = Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap(),
    )
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = catalyst_core::crd::of_kind("CatalystNodeReport").unwrap();
    crds.patch("catalystnodereports.catalyst.io", &PatchParams::apply("catalyst-e2e").force(), &Patch::Apply(&crd))
        .await
        .unwrap();

    let kubelet = FakeKubelet::default();
    kubelet.set(&[("sms-1", "sms", &[17, 18, 19, 20]), ("sms-2", "sms", &[])]);
    let running = kubelet.serve(&dir.join("kubelet.sock"));
    // A node of this test's own, so that runs in parallel, or on a shared cluster, never meet.
    let node = format!("catalyst-e2e-agent-{}", std::process::id());
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_catalyst-agent"))
            .args(["--node-name", &node, "--interval-seconds=1", "--heartbeat-seconds=5"])
            .arg(format!("--socket={}", dir.join("kubelet.sock").display()))
            .arg(format!("--sysfs={}", dir.join("sys").display()))
            .env("KUBECONFIG", &kubeconfig)
            .spawn()
            .unwrap(),
    );

    let reports: Api<CatalystNodeReport> = Api::all(client.clone());
    let report = eventually("the node's report", async || reports.get_opt(&node).await.ok().flatten()).await;
    assert_eq!(report.spec.allocatable_cpus, "2-63");
    assert_eq!(report.spec.numa.iter().map(|c| c.cpus.as_str()).collect::<Vec<_>>(), ["0-31", "32-63"]);
    let pods: Vec<(&str, &str)> =
        report.spec.pods.iter().map(|p| (p.name.as_str(), p.containers[0].cpus.as_str())).collect();
    assert_eq!(pods, [("sms-1", "17-20"), ("sms-2", "")]);

    // Unchanged, the report is not written again until its heartbeat is due; changed, it follows.
    let version = report.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(reports.get(&node).await.unwrap().metadata.resource_version, version);
    let first = report.spec.heartbeat_time.clone().expect("a heartbeat");
    eventually("the heartbeat renewed", async || {
        let renewed = reports.get(&node).await.ok()?.spec.heartbeat_time?;
        (renewed.0 > first.0).then_some(())
    })
    .await;
    kubelet.set(&[("sms-1", "sms", &[17, 18, 19, 20]), ("sms-2", "sms", &[21, 22])]);
    eventually("the report follows the kubelet", async || {
        let report = reports.get(&node).await.ok()?;
        (report.spec.pods.get(1)?.containers[0].cpus == "21-22").then_some(())
    })
    .await;

    // The kubelet restarts (a new process, a new socket): the agent connects again.
    drop(running);
    eventually("the old kubelet gone", async || (!dir.join("kubelet.sock").exists()).then_some(())).await;
    let restarted = FakeKubelet::default();
    restarted.set(&[("sms-1", "sms", &[17, 18, 19, 20])]);
    let _running = restarted.serve(&dir.join("kubelet.sock"));
    eventually("the report follows the restarted kubelet", async || {
        let report = reports.get(&node).await.ok()?;
        (report.spec.pods.len() == 1).then_some(())
    })
    .await;

    drop(agent);
    reports.delete(&node, &DeleteParams::default()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
