//! How the live commands reach the cluster: through kubectl, with its KUBECONFIG and credentials.

use anyhow::Context;
use std::path::PathBuf;

/// kubectl, as the user runs it.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// The kubectl to ask.
    #[arg(long, env = "KUBECTL", default_value = "kubectl")]
    pub kubectl: PathBuf,
    /// kubectl's --context.
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// Runs kubectl with `args`: its output, or an error with what it said.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = std::process::Command::new(&self.kubectl);
        command.args(args);
        if let Some(context) = &self.context {
            command.arg(format!("--context={context}"));
        }
        let out = command.output().with_context(|| format!("running {}", self.kubectl.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8(out.stdout).context("kubectl printed something that is not UTF-8")
    }

    /// The live Catalyst objects.
    pub fn live(&self) -> anyhow::Result<catalyst_core::status::Live> {
        let json = self.run(&["get", "catalysthosts,catalystvms,servicegroups", "--all-namespaces", "-o", "json"])?;
        Ok(catalyst_core::status::Live::from_list(&json)?)
    }
}
