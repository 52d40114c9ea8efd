//! `catalyst-operator`: reconciles CatalystHosts, CatalystVMs and ServiceGroups.

use catalyst::controller::runtime::Config;
use catalyst::planner::Overhead;
use catalyst::quantity::parse_bytes;
use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "catalyst-operator", version, about = "Reconciles Catalyst layouts into KubeVirt VMs and pinned pods")]
struct Args {
    /// Namespace of the CatalystVMs and ServiceGroups to manage (CatalystHosts are cluster-scoped); all when unset.
    #[arg(long, env = "CATALYST_NAMESPACE")]
    namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "CATALYST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Fixed memory overhead of each VM's launcher pod, as the planner counts it.
    #[arg(long, env = "CATALYST_OVERHEAD_FIXED", default_value = "228Mi", value_parser = quantity)]
    overhead_fixed: u64,
    /// Memory overhead per vCPU of each VM's launcher pod.
    #[arg(long, env = "CATALYST_OVERHEAD_PER_VCPU", default_value = "8Mi", value_parser = quantity)]
    overhead_per_vcpu: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn quantity(text: &str) -> Result<u64, String> {
    parse_bytes(text).map_err(|e| e.to_string())
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        namespace: args.namespace,
        overhead: Overhead { fixed: args.overhead_fixed, per_vcpu: args.overhead_per_vcpu, ..Overhead::default() },
    };
    catalyst::controller::run(client, config, || {}).await;
    ExitCode::SUCCESS
}
