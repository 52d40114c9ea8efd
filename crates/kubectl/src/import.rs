//! `kubectl catalyst import`: what users have, printed as Catalyst objects (YAML that
//! `validate` and `plan` take as it is), with what does not map on stderr. The files are read
//! here; the conversion is `catalyst_import`'s.

use anyhow::Context;
use catalyst_import::{compose, openstack};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The arguments of `import compose`.
pub struct ComposeArgs<'a> {
    pub file: &'a Path,
    pub vm: &'a str,
    pub namespace: &'a str,
    pub services: &'a [String],
    pub env_file: Option<&'a Path>,
}

/// Reads a file an import names, refusing one larger than the manifests' budget.
fn read_bounded(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > catalyst_core::yaml::MAX_INPUT_BYTES {
        return Err(format!("{size} bytes is more than {} bytes", catalyst_core::yaml::MAX_INPUT_BYTES));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// A file an import reads, with its name in the error.
fn read_file(path: &Path) -> anyhow::Result<String> {
    read_bounded(path).map_err(anyhow::Error::msg).with_context(|| format!("reading {}", path.display()))
}

/// The variables compose interpolates with: the `.env` file beside the compose file (or
/// `--env-file`), under the shell's environment, which wins (as `docker compose` reads them).
fn variables(args: &ComposeArgs, dir: &Path) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut variables = BTreeMap::new();
    let mut unset = compose::interpolate::Unset::default();
    let dotenv = args.env_file.map(Path::to_path_buf).unwrap_or_else(|| dir.join(".env"));
    if args.env_file.is_some() || dotenv.exists() {
        let text = read_bounded(&dotenv)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("reading {}", dotenv.display()))?;
        let shell: BTreeMap<String, String> = std::env::vars().collect();
        for (key, value) in compose::dotenv::parse(&dotenv.display().to_string(), &text, &shell, &mut unset)? {
            variables.insert(key, value);
        }
    }
    variables.extend(std::env::vars());
    let warnings = unset.0.keys().map(|name| format!("variable {name} in {} is not set", dotenv.display())).collect();
    Ok((variables, warnings))
}

pub fn compose(args: &ComposeArgs) -> anyhow::Result<ExitCode> {
    let text = read_bounded(args.file)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let dir: PathBuf = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let (variables, mut warnings) = variables(args, &dir)?;
    let read = |relative: &str| read_bounded(&dir.join(relative));
    let request = compose::Request {
        text: &text,
        file: &args.file.display().to_string(),
        vm: args.vm,
        namespace: args.namespace,
        variables: &variables,
        read: &read,
        only: args.services,
    };
    let imported = compose::import(&request)?;
    warnings.extend(imported.warnings);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let documents: Vec<String> =
        imported.groups.iter().map(catalyst_core::yaml::to_string).collect::<Result<_, _>>()?;
    print!("{}", documents.join("---\n"));
    Ok(ExitCode::SUCCESS)
}

/// The arguments of `import openstack`.
#[derive(clap::Args)]
pub struct OpenstackArgs {
    /// `openstack flavor list --long --all -f json`.
    #[arg(long, value_name = "FILE")]
    pub flavors: PathBuf,
    /// `openstack server list --long --all-projects -f json`: one CatalystVM each.
    #[arg(long, value_name = "FILE")]
    pub servers: PathBuf,
    /// `openstack --os-compute-api-version 2.87 hypervisor list --long -f json`: one
    /// CatalystHost each.
    #[arg(long, value_name = "FILE")]
    pub hypervisors: Option<PathBuf>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The StorageClass of each VM's boot DataVolume (the flavor's disk size).
    #[arg(long, value_name = "CLASS")]
    pub storage_class: String,
    /// The image each boot disk is imported from (Glance images are not in these outputs),
    /// such as docker://quay.io/containerdisks/ubuntu:24.04.
    #[arg(long, value_name = "URL")]
    pub image_url: String,
    /// The kubeadm join Secret that makes each VM a node (with --kubernetes-version).
    #[arg(long, value_name = "SECRET", requires = "kubernetes_version")]
    pub join_secret: Option<String>,
    /// The Kubernetes release the VMs' nodes install (with --join-secret).
    #[arg(long, value_name = "VERSION", requires = "join_secret")]
    pub kubernetes_version: Option<String>,
}

pub fn openstack(args: &OpenstackArgs) -> anyhow::Result<ExitCode> {
    let hypervisors = args.hypervisors.as_deref().map(read_file).transpose()?;
    let request = openstack::Request {
        flavors: &read_file(&args.flavors)?,
        servers: &read_file(&args.servers)?,
        hypervisors: hypervisors.as_deref(),
        namespace: &args.namespace,
        storage_class: &args.storage_class,
        image_url: &args.image_url,
        node: args.join_secret.as_deref().zip(args.kubernetes_version.as_deref()),
    };
    let imported = openstack::import(&request)?;
    for warning in &imported.warnings {
        eprintln!("warning: {warning}");
    }
    if request.node.is_none() {
        eprintln!("warning: the VMs boot but do not become nodes: give --join-secret and --kubernetes-version");
    }
    let hosts = imported.hosts.iter().map(catalyst_core::yaml::to_string);
    let documents: Vec<String> =
        hosts.chain(imported.vms.iter().map(catalyst_core::yaml::to_string)).collect::<Result<_, _>>()?;
    print!("{}", documents.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
