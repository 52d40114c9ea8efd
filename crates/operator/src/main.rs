//! `catalyst-operator`: reconciles CatalystHosts, CatalystVMs and ServiceGroups. With leader
//! election (the default), any number of replicas can run and exactly one writes.

use catalyst_core::planner::Overhead;
use catalyst_core::pool::HostPool;
use catalyst_operator::controller::runtime::Config;
use catalyst_operator::lease::{Election, Elector, Lost, Timing};
use catalyst_operator::metrics::Metrics;
use catalyst_operator::serve::{self, Health, Phase};
use catalyst_operator::throttle::ClientLimit;
use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc, not glibc's malloc: the operator allocates and frees small objects from every
/// worker thread (watch events, patches), where glibc's per-thread arenas spent 20% of its
/// samples in malloc and free and fragmented. Measured side by side (docs/src/performance.md):
/// 10% less CPU and 12% less peak RSS at 10,000 VMs. `no_thp`: with transparent huge pages its
/// arenas doubled the RSS of a small layout.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "catalyst-operator", version, about = "Reconciles Catalyst layouts into KubeVirt VMs and pinned pods")]
struct Args {
    /// Namespaces of the CatalystVMs and ServiceGroups to manage, repeated or comma-separated
    /// (CatalystHosts are cluster-scoped); all when unset.
    #[arg(long = "namespace", env = "CATALYST_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// The CatalystHosts this operator places VMs on, as a label selector (such as
    /// `catalyst.io/pool=blue`); every host when unset. Operators with disjoint pools share a
    /// cluster without touching each other's hosts.
    #[arg(long, env = "CATALYST_HOST_SELECTOR", default_value = "", value_parser = host_pool)]
    host_selector: HostPool,
    /// How long one placement may search for a packing when the heuristic leaves a VM out
    /// (milliseconds). Placements take turns, so this bounds how long one can hold the others.
    #[arg(long, env = "CATALYST_SEARCH_MILLISECONDS", default_value_t = 200)]
    search_milliseconds: u64,
    /// How many objects each controller reconciles at once. It bounds the requests in flight
    /// (a reconcile makes its requests one after another) and so the connections and memory.
    #[arg(long, env = "CATALYST_RECONCILE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    reconcile_concurrency: u16,
    /// A client-side ceiling on the operator's requests a second, as client-go's QPS; 0 (the
    /// default) sets none and leaves fairness to the API server's API Priority and Fairness.
    #[arg(long, env = "CATALYST_CLIENT_QPS", default_value_t = 0.0)]
    client_qps: f64,
    /// How many requests may go at once under `--client-qps`, as client-go's Burst.
    #[arg(long, env = "CATALYST_CLIENT_BURST", default_value_t = 100)]
    client_burst: u32,
    /// Log format.
    #[arg(long, env = "CATALYST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CATALYST_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_address: SocketAddr,
    /// Elect a leader on a Lease so that only one replica writes. Turn off only for a single replica.
    #[arg(long, env = "CATALYST_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, env = "CATALYST_LEASE_NAME", default_value = "catalyst-operator")]
    lease_name: String,
    /// This replica's name in the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// A Lease not renewed for this long may be taken over.
    #[arg(long, env = "CATALYST_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// The leader renews this often...
    #[arg(long, env = "CATALYST_LEASE_RENEW_SECONDS", default_value_t = 5)]
    lease_renew_seconds: u64,
    /// ...and stops at once when it could not renew for this long.
    #[arg(long, env = "CATALYST_LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    lease_renew_deadline_seconds: u64,
    #[command(flatten)]
    kubevirt: catalyst_core::planner::overhead::KubevirtArgs,
    /// Each VM joins with a bootstrap token of its own, minted in kube-system while it joins,
    /// whose kubelet client certificate the operator approves for that VM's node alone; the
    /// join Secret then needs only apiServerEndpoint and caCertHash. Off, every VM joins with
    /// the join Secret's token. Needs the chart's joinTokens.mint (Roles in kube-system and
    /// kube-public, the approval of kubelet certificates).
    #[arg(long, env = "CATALYST_MINT_JOIN_TOKENS", default_value_t = true, action = clap::ArgAction::Set)]
    mint_join_tokens: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn host_pool(text: &str) -> Result<HostPool, String> {
    HostPool::parse(text).map_err(|e| e.to_string())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    // Checked first: bad settings are refused before anything starts.
    let timing = match Timing::new(
        Duration::from_secs(args.lease_duration_seconds),
        Duration::from_secs(args.lease_renew_deadline_seconds),
        Duration::from_secs(args.lease_renew_seconds),
    ) {
        Ok(timing) => timing,
        Err(error) => {
            tracing::error!(%error, "invalid leader election settings");
            return ExitCode::from(2);
        }
    };
    let limit = match ClientLimit::new(args.client_qps, args.client_burst) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::error!(%error, "invalid client rate limit");
            return ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = match tokio::net::TcpListener::bind(args.metrics_address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %args.metrics_address, "cannot serve /metrics, /healthz and /readyz");
            return ExitCode::FAILURE;
        }
    };
    let server = tokio::spawn(serve::serve(listener, metrics.clone(), health.clone()));
    let client = match kube::Config::infer().await.map_err(kube::Error::InferConfig).and_then(|mut config| {
        catalyst_operator::identity::identify(&mut config, "catalyst-operator");
        catalyst_operator::throttle::client(config, limit)
    }) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)");
            return ExitCode::FAILURE;
        }
    };
    let identity = args.identity.clone().unwrap_or_else(|| format!("catalyst-operator-{}", std::process::id()));
    let config = Config {
        namespaces: args.namespaces.clone(),
        host_pool: args.host_selector.clone(),
        concurrency: args.reconcile_concurrency,
        instance: Some(identity.clone()),
        search: catalyst_core::planner::SearchBudget {
            time: Duration::from_millis(args.search_milliseconds),
            ..catalyst_core::planner::SearchBudget::default()
        },
        overhead: Overhead::from(&args.kubevirt),
        mint_join_tokens: args.mint_join_tokens,
    };
    let synced = {
        let health = health.clone();
        move || health.set(Phase::Leading)
    };
    if !args.leader_elect {
        health.set(Phase::Syncing);
        catalyst_operator::controller::run(client, config, metrics, synced).await;
        server.abort();
        return ExitCode::SUCCESS;
    }

    let elector = Elector::new(client.clone(), &args.lease_namespace, &args.lease_name, &identity, timing);
    health.set(Phase::StandingBy);
    tracing::info!(%identity, lease = %args.lease_name, "waiting to lead");
    tokio::select! {
        () = elector.acquire() => {}
        () = terminated() => {
            tracing::info!("stopped while standing by");
            return ExitCode::SUCCESS;
        }
    }
    tracing::info!(%identity, "leading");
    health.set(Phase::Syncing);
    tokio::select! {
        () = catalyst_operator::controller::run(client, config, metrics, synced) => {
            if let Err(error) = elector.release().await {
                tracing::warn!(%error, "could not release the lease; a successor waits for it to expire");
            }
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        // Losing the lease stops every write at once: the controllers are dropped mid-flight.
        lost = elector.hold() => {
            match lost {
                Lost::Taken { holder } => tracing::error!(?holder, "the lease was taken; exiting so that only the new leader writes"),
                Lost::Deadline => tracing::error!("could not renew the lease within its renew deadline; exiting so that a new leader can write"),
            }
            ExitCode::from(3)
        }
    }
}
