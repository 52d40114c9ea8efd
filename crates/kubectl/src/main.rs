//! `kubectl catalyst`: the offline side of Catalyst, for a laptop or a GitOps pull-request check.

mod cluster;
mod import;
mod plan;

use anyhow::Context;
use catalyst_core::manifest;
use catalyst_core::planner::evacuate::{Departure, evacuate};
use catalyst_core::planner::overhead::KubevirtArgs;
use catalyst_core::planner::{self, Overhead, PlanInput, SearchBudget};
use catalyst_core::pool::HostPool;
use clap::{Parser, Subcommand};
use cluster::ClusterArgs;
use plan::{LiveFrom, Output, Questions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kubectl-catalyst", version, about = "Plan, validate and render Catalyst layouts offline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions, or write one file per kind into a directory.
    Crds {
        /// Directory to write the CRDs into (catalysthosts.yaml, catalystvms.yaml, servicegroups.yaml, catalystnodereports.yaml).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Plan a layout offline: where each VM goes, whether each ServiceGroup fits its VM, and
    /// every violation. Exit 0 when it fits, 1 when it is proven not to, 3 when no packing was
    /// found within the search budget and none was ruled out, 2 on bad input.
    Plan {
        /// Files or directories of YAML manifests (multi-document files are fine).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also answer: how many more hosts shaped like this CatalystHost make every VM fit?
        #[arg(long, value_name = "HOST")]
        add_hosts_like: Option<String>,
        /// Also answer the N+1 question: could each host's VMs be re-placed on the others?
        /// A stranded VM then makes the exit code 1.
        #[arg(long)]
        check_host_loss: bool,
        /// Also answer: where would this host's VMs go if it were drained (each as its
        /// moveStrategy says)? A VM that cannot leave then makes the exit code 1.
        #[arg(long, value_name = "HOST")]
        drain: Option<String>,
        /// Also answer: where would this host's VMs restart if it were lost (fenced)? A VM that
        /// would stay down then makes the exit code 1.
        #[arg(long, value_name = "HOST")]
        lose: Option<String>,
        /// Plan the files merged into the live layout (its hosts, ledgers, VMs and groups, read
        /// through kubectl, or from a saved `kubectl get catalysthosts,catalystvms,servicegroups
        /// -A -o json` given as `--live=FILE`), and say what a merge would do: VMs it would place,
        /// VMs that would restart to take their new spec, groups that would no longer fit.
        #[arg(long, value_name = "LIST", num_args = 0..=1, require_equals = true)]
        live: Option<Option<PathBuf>>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        kubevirt: KubevirtArgs,
        /// Plan only on the CatalystHosts this label selector matches (as the operator's
        /// `--host-selector`); every host when unset.
        #[arg(long, value_name = "SELECTOR", default_value = "", value_parser = parse_pool)]
        host_selector: HostPool,
        /// How long the exact search may run, per plan, when the heuristic leaves a VM out
        /// (such as 500ms or 10s).
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        search_time: std::time::Duration,
        /// How many placements the exact search may try, per plan.
        #[arg(long, value_name = "PLACEMENTS", default_value_t = SearchBudget::default().nodes)]
        search_nodes: u64,
    },
    /// Print, offline, every object the operator would create for these manifests
    /// (VirtualMachines, cloud-init Secrets with credentials redacted, StatefulSets, Services)
    /// in plan order, as YAML for review. Exit 1 when some VM or group cannot be placed (it is
    /// left out and named on stderr), 2 on bad input.
    Render {
        /// Files or directories of YAML manifests (multi-document files are fine).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Plan only on the CatalystHosts this label selector matches (as the operator's
        /// `--host-selector`); every host when unset.
        #[arg(long, value_name = "SELECTOR", default_value = "", value_parser = parse_pool)]
        host_selector: HostPool,
    },
    /// Check manifests offline; exit 1 when any Catalyst object is invalid. Other kinds are ignored.
    Validate {
        /// Files or directories of YAML manifests (multi-document files are fine).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Put a host in maintenance (`spec.maintenance: true`): the operator moves its VMs to the
    /// hosts the planner finds, live where they can migrate. Prints where each goes, from the
    /// live layout; `--dry-run` only prints. Exit 1 when some VM cannot leave, 2 on error.
    Drain {
        /// The CatalystHost.
        host: String,
        /// Print the moves; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// End a host's maintenance (`spec.maintenance: false`): it takes VMs again. VMs that
    /// left it stay where they went.
    Undrain {
        /// The CatalystHost.
        host: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Print Catalyst objects for what runs today: `import compose` for the services of a
    /// docker-compose file. Warnings on stderr name what does not map. Exit 2 on bad input.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// The live layout: each host's VMs, their ServiceGroups and replicas, with the cores each
    /// holds as the kubelets report them and its Pinned verdict. Read through kubectl (its
    /// KUBECONFIG, context and credentials), or from a saved List. Exit 1 when some VM or group
    /// is not pinned, 2 on error.
    Status {
        /// A saved `kubectl get catalysthosts,catalystvms,servicegroups -A -o json` to read
        /// instead of the cluster.
        #[arg(short = 'f', long = "filename")]
        file: Option<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusOutput::Tree)]
        output: StatusOutput,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// ServiceGroups for the services of a docker-compose file, all in one CatalystVM: whole
    /// cores and memory from cpus/mem_limit or deploy.resources, services that differ only by
    /// an index (sms-service-1 ... 12) folded into one group of N replicas.
    Compose {
        /// The compose file; its `.env` and `env_file`s are read beside it.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// The CatalystVM the groups run in.
        #[arg(long)]
        vm: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Import only this service (repeatable); every service when unset.
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
        /// Read the variables from this file instead of the `.env` beside the compose file.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
    /// CatalystVMs for OpenStack servers (their flavors' cores, memory, disk and extra specs)
    /// and CatalystHosts for its hypervisors, from the JSON of `openstack flavor list --long
    /// --all -f json`, `openstack server list --long --all-projects -f json` and `openstack
    /// --os-compute-api-version 2.87 hypervisor list --long -f json`.
    Openstack(import::OpenstackArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusOutput {
    /// host → VM → group → replica, with cores and verdicts.
    Tree,
    /// Each host's and each VM's CPUs, coloured by who holds them.
    Svg,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crds { out_dir } => {
            write_crds(out_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { files } => Ok(validate(&files)),
        Command::Render { files, host_selector } => render(&files, &host_selector),
        Command::Status { file, output, cluster } => status(file, output, &cluster),
        Command::Import { source: ImportSource::Openstack(args) } => import::openstack(&args),
        Command::Import { source: ImportSource::Compose { file, vm, namespace, services, env_file } } => {
            import::compose(&import::ComposeArgs {
                file: &file,
                vm: &vm,
                namespace: &namespace,
                services: &services,
                env_file: env_file.as_deref(),
            })
        }
        Command::Drain { host, dry_run, cluster } => drain(&host, dry_run, &cluster),
        Command::Undrain { host, cluster } => {
            cluster.run(&[
                "patch",
                "catalysthost",
                &host,
                "--type=merge",
                "-p",
                r#"{"spec":{"maintenance":false}}"#,
            ])?;
            println!("CatalystHost {host} takes VMs again; the VMs that left it stay where they went");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            output,
            add_hosts_like,
            check_host_loss,
            drain,
            lose,
            live,
            cluster,
            kubevirt,
            host_selector,
            search_time,
            search_nodes,
        } => {
            let overhead = Overhead::from(&kubevirt);
            let budget = SearchBudget { nodes: search_nodes, time: search_time };
            let questions = Questions {
                add_hosts_like: add_hosts_like.as_deref(),
                check_host_loss,
                drain: drain.as_deref(),
                lose: lose.as_deref(),
                budget,
            };
            let live = live.map(|from| match from {
                Some(file) => LiveFrom::List(file),
                None => LiveFrom::Cluster(&cluster),
            });
            plan::plan(&files, live, output, &questions, &overhead, &host_selector)
        }
    }
}

/// A duration such as `500ms`, `2s` or `1m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?}: expected a number and a unit, such as 2s"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(number)),
        "s" | "" => Ok(std::time::Duration::from_secs(number)),
        "m" => Ok(std::time::Duration::from_secs(number.saturating_mul(60))),
        other => Err(format!("{text:?}: unknown unit {other:?} (ms, s or m)")),
    }
}

fn parse_pool(text: &str) -> Result<HostPool, String> {
    HostPool::parse(text).map_err(|e| e.to_string())
}

/// The manifests, or `None` after printing every error in them (bad input: nothing is `done`).
pub(crate) fn load_valid(files: &[PathBuf], done: &str) -> Option<manifest::Manifests> {
    let (manifests, errors) = manifest::load(files);
    if errors.is_empty() {
        return Some(manifests);
    }
    for error in &errors {
        eprintln!("{error}");
    }
    eprintln!("{} error(s) in the manifests: nothing {done}", errors.len());
    None
}

fn write_crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = catalyst_core::crd::all();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, crd) in crds {
                let path = dir.join(file);
                std::fs::write(&path, catalyst_core::crd::to_yaml(&crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let documents: Vec<String> = crds.iter().map(|(_, crd)| catalyst_core::crd::to_yaml(crd)).collect();
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(())
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let (manifests, errors) = manifest::load(files);
    for error in &errors {
        println!("{error}");
    }
    let valid = manifests.hosts.len() + manifests.vms.len() + manifests.groups.len();
    println!(
        "{valid} valid Catalyst object(s), {} error(s), {} document(s) of other kinds ignored",
        errors.len(),
        manifests.ignored
    );
    if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn render(files: &[PathBuf], pool: &HostPool) -> anyhow::Result<ExitCode> {
    let Some(manifests) = load_valid(files, "rendered") else { return Ok(ExitCode::from(2)) };
    let plan = planner::plan(&PlanInput::from_manifests(&manifests, &Overhead::default(), pool));
    let rendered = catalyst_core::render::offline::render_plan(&manifests, &plan);
    for skipped in &rendered.skipped {
        eprintln!("not rendered: {skipped}");
    }
    let documents: Vec<String> =
        rendered.objects.iter().map(catalyst_core::yaml::to_string).collect::<Result<_, _>>()?;
    print!("{}", documents.join("---\n"));
    Ok(if rendered.skipped.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The live objects, from a saved List or through kubectl, printed as `output`.
fn status(file: Option<PathBuf>, output: StatusOutput, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let live = match file {
        Some(file) => read_list(&file)?,
        None => cluster.live()?,
    };
    match output {
        StatusOutput::Tree => print!("{}", catalyst_core::status::tree(&live)),
        StatusOutput::Svg => print!("{}", catalyst_core::status::svg(&live)),
    }
    Ok(if live.all_pinned() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The live objects of a saved `kubectl get ... -o json` List.
fn read_list(file: &std::path::Path) -> anyhow::Result<catalyst_core::status::Live> {
    let json = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(catalyst_core::status::Live::from_list(&json)?)
}

/// Where the host's VMs would go from the live layout, then, unless `dry_run`, its maintenance set.
fn drain(host: &str, dry_run: bool, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let live = cluster.live()?;
    anyhow::ensure!(
        live.hosts.iter().any(|h| h.metadata.name.as_deref() == Some(host)),
        "CatalystHost {host} not found"
    );
    let input = live.plan_input(&Overhead::default());
    let evacuation = evacuate(&input, host, Departure::Drain, SearchBudget::default());
    print!("{}", planner::report::evacuation(&evacuation, Departure::Drain));
    if !dry_run {
        cluster.run(&["patch", "catalysthost", host, "--type=merge", "-p", r#"{"spec":{"maintenance":true}}"#])?;
        println!(
            "CatalystHost {host} is in maintenance: the operator moves its VMs (kubectl catalyst status follows them)"
        );
    }
    Ok(if evacuation.complete() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
