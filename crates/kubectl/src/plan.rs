//! `kubectl catalyst plan`: the plan of a layout's files, or of the live layout with the files
//! merged in (`--live`), and the questions asked with it.

use crate::cluster::ClusterArgs;
use catalyst_core::merge::{self, MergeReport};
use catalyst_core::planner::evacuate::{Departure, Evacuation, as_planned, evacuate};
use catalyst_core::planner::{self, Overhead, PlanInput, SearchBudget, Verdict, whatif};
use catalyst_core::pool::HostPool;
use catalyst_core::status::Live;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
    /// The plan as a picture: hosts as bars of cores and memory, VMs and groups inside them,
    /// in red what does not fit.
    Svg,
    /// A page that shows the picture and lists the violations.
    Html,
}

/// Where the layout the files are merged into comes from (`--live`).
pub enum LiveFrom<'a> {
    Cluster(&'a ClusterArgs),
    List(PathBuf),
}

impl LiveFrom<'_> {
    fn read(&self) -> anyhow::Result<Live> {
        match self {
            LiveFrom::Cluster(cluster) => cluster.live(),
            LiveFrom::List(file) => crate::read_list(file),
        }
    }
}

/// The plan and the answers to the questions asked with it, as `-o json|yaml` prints them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanReport<'a> {
    overhead: &'a Overhead,
    #[serde(flatten)]
    plan: &'a planner::Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    more_hosts: Option<&'a whatif::MoreHosts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_loss: Option<&'a [whatif::HostLoss]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drain: Option<&'a Evacuation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lose: Option<&'a Evacuation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<&'a MergeReport>,
}

/// What `plan` is asked besides the plan itself, and how hard it may search.
pub struct Questions<'a> {
    pub add_hosts_like: Option<&'a str>,
    pub check_host_loss: bool,
    pub drain: Option<&'a str>,
    pub lose: Option<&'a str>,
    pub budget: SearchBudget,
}

/// Exit code of a plan that was not found within the search budget (0 fits, 1 proven misfit,
/// 2 bad input).
const NOT_FOUND_WITHIN_BUDGET: u8 = 3;

/// Plans `files` (merged into the live layout when `live` says where it comes from), answers
/// the questions, prints it all as `output`; the exit code says whether it fits.
pub fn plan(
    files: &[PathBuf],
    live: Option<LiveFrom>,
    output: Output,
    questions: &Questions,
    overhead: &Overhead,
    pool: &HostPool,
) -> anyhow::Result<ExitCode> {
    let Some(manifests) = crate::load_valid(files, "planned") else { return Ok(ExitCode::from(2)) };
    let budget = questions.budget;
    let (input, merge) = match live {
        None => (PlanInput::from_manifests(&manifests, overhead, pool), None),
        Some(from) => {
            let live = from.read()?;
            let inputs = merge::inputs(&live, &manifests, overhead, pool);
            let before = planner::plan_within(&inputs.before, budget);
            (inputs.after, Some((live, inputs.merged, before)))
        }
    };
    let plan = planner::plan_within(&input, budget);
    let merge = merge.map(|(live, merged, before)| merge::compare(&live, &merged, &before, &plan));
    let more = match questions.add_hosts_like {
        Some(like) => match whatif::hosts_needed(&input, like, budget) {
            Some(more) => Some(more),
            None => {
                eprintln!("--add-hosts-like: {like} is not a CatalystHost in these manifests");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let loss = questions.check_host_loss.then(|| whatif::host_loss(&input, &plan, budget));
    let mut evacuations = Vec::new();
    for (host, departure) in [(questions.drain, Departure::Drain), (questions.lose, Departure::Loss)] {
        let Some(host) = host else { continue };
        if !input.hosts.iter().any(|h| h.name == host) {
            eprintln!("{host} is not a CatalystHost in these manifests");
            return Ok(ExitCode::from(2));
        }
        evacuations.push((evacuate(&as_planned(&input, &plan), host, departure, budget), departure));
    }
    let of = |wanted: Departure| evacuations.iter().find(|(_, d)| *d == wanted).map(|(e, _)| e);
    match output {
        Output::Table => {
            print!("{}", planner::report::table(&plan, more.as_ref(), loss.as_deref()));
            for (evacuation, departure) in &evacuations {
                print!("\n{}", planner::report::evacuation(evacuation, *departure));
            }
            if let Some(merge) = &merge {
                print!("\n{}", merge::table(merge));
            }
        }
        Output::Svg => print!("{}", planner::picture::svg(&plan)),
        Output::Html => print!("{}", planner::picture::html(&plan)),
        Output::Json | Output::Yaml => {
            let report = PlanReport {
                overhead,
                plan: &plan,
                more_hosts: more.as_ref(),
                host_loss: loss.as_deref(),
                drain: of(Departure::Drain),
                lose: of(Departure::Loss),
                merge: merge.as_ref(),
            };
            let text = match output {
                Output::Json => serde_json::to_string_pretty(&report)? + "\n",
                _ => catalyst_core::yaml::to_string(&report)?,
            };
            print!("{text}");
        }
    }
    let stranded = loss.iter().flatten().filter(|l| !l.stranded.is_empty()).map(|l| &l.verdict);
    let blocked = evacuations.iter().filter(|(e, _)| !e.complete()).map(|(e, _)| &e.verdict);
    let failing: Vec<&Verdict> = stranded.chain(blocked).collect();
    let undecided = |verdict: &Verdict| matches!(verdict, Verdict::NotFoundWithinBudget { .. });
    Ok(if plan.fits && failing.is_empty() {
        ExitCode::SUCCESS
    } else if undecided(&plan.verdict) || (plan.fits && failing.iter().all(|v| undecided(v))) {
        ExitCode::from(NOT_FOUND_WITHIN_BUDGET)
    } else {
        ExitCode::FAILURE
    })
}
