//! `catalyst-agent`: runs on every node (a DaemonSet), and keeps the node's CatalystNodeReport
//! equal to what its kubelet says of the CPUs each pod holds exclusively. It reads the
//! kubelet's PodResources socket and sysfs, and writes nothing but its own node's report.

use catalyst_agent::{kubelet, report, sysfs};
use catalyst_api::{CatalystNodeReport, CatalystNodeReportSpec};
use clap::Parser;
use kube::api::{Api, Patch, PatchParams};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The agent's name as a field manager and in the API server's audit log.
const AGENT: &str = "catalyst-agent";

#[derive(Parser)]
#[command(name = "catalyst-agent", version, about = "Reports the CPUs each pod on this node holds exclusively")]
struct Args {
    /// This node's name (the Downward API's spec.nodeName in the DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The kubelet's PodResources socket.
    #[arg(long, env = "CATALYST_PODRESOURCES_SOCKET", default_value = kubelet::SOCKET)]
    socket: PathBuf,
    /// Where sysfs is mounted, for the node's NUMA cells.
    #[arg(long, env = "CATALYST_SYSFS", default_value = "/sys")]
    sysfs: PathBuf,
    /// How often the kubelet is asked (it offers no watch of its CPU assignments).
    #[arg(long, env = "CATALYST_REPORT_INTERVAL_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    interval_seconds: u64,
    /// How often the report is renewed when nothing changed, so the operator knows the agent
    /// still runs: at most 60 s, as the operator takes a report not renewed for 180 s as stale.
    #[arg(long, env = "CATALYST_HEARTBEAT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=60))]
    heartbeat_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .init();
    let client = match kube::Config::infer().await.map_err(kube::Error::InferConfig).and_then(|mut config| {
        let agent = format!("{AGENT}/{}", env!("CARGO_PKG_VERSION"));
        config.headers.push((http::header::USER_AGENT, agent.parse().expect("a valid header value")));
        kube::Client::try_from(config)
    }) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)");
            return ExitCode::FAILURE;
        }
    };
    let reports: Api<CatalystNodeReport> = Api::all(client);
    let mut every = tokio::time::interval(Duration::from_secs(args.interval_seconds));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let heartbeat = Duration::from_secs(args.heartbeat_seconds);
    // What was last written, and when.
    let mut written: Option<(CatalystNodeReportSpec, std::time::Instant)> = None;
    let mut kubelet: Option<Kubelet> = None;
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = terminate.recv() => return ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
        match observe(&args, &mut kubelet).await {
            Ok(now) if written.as_ref().is_some_and(|(spec, at)| *spec == now && at.elapsed() < heartbeat) => {}
            Ok(now) => match write(&reports, &args.node_name, &now).await {
                Ok(()) => {
                    tracing::info!(node = %args.node_name, pods = now.pods.len(), "report written");
                    written = Some((now, std::time::Instant::now()));
                }
                Err(error) => tracing::warn!(%error, node = %args.node_name, "could not write the report; retrying"),
            },
            Err(error) => tracing::warn!(%error, "could not read the kubelet; retrying"),
        }
    }
}

/// The node's report as its kubelet and sysfs say now. The channel is kept between rounds:
/// tonic dials the socket again when the connection is lost (the kubelet restarted).
async fn observe(args: &Args, kubelet: &mut Option<Kubelet>) -> Result<CatalystNodeReportSpec, kubelet::KubeletError> {
    let connected = match kubelet {
        Some(connected) => connected,
        None => kubelet.insert(kubelet::connect(&args.socket).await?),
    };
    let snapshot = kubelet::snapshot(connected).await?;
    Ok(report::report(&snapshot, sysfs::numa_cells(&args.sysfs)))
}

type Kubelet =
    catalyst_agent::podresources::pod_resources_lister_client::PodResourcesListerClient<tonic::transport::Channel>;

/// Server-side apply of the node's report, created or replaced whole in one request, with the
/// time it was written as its heartbeat.
async fn write(
    reports: &Api<CatalystNodeReport>,
    node: &str,
    spec: &CatalystNodeReportSpec,
) -> Result<(), kube::Error> {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let report = CatalystNodeReport::new(node, CatalystNodeReportSpec { heartbeat_time: Some(now), ..spec.clone() });
    let mut body = serde_json::to_value(&report).expect("a report serializes");
    body["apiVersion"] = catalyst_api::API_VERSION.into();
    body["kind"] = "CatalystNodeReport".into();
    reports.patch(node, &PatchParams::apply(AGENT).force(), &Patch::Apply(&body)).await.map(drop)
}
