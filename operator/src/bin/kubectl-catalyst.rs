//! `kubectl catalyst`: the offline side of Catalyst, for a laptop or a GitOps pull-request check.

use anyhow::Context;
use catalyst::manifest;
use clap::{Parser, Subcommand};
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
        /// Directory to write catalysthosts.yaml, catalystvms.yaml and servicegroups.yaml into.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Check manifests offline; exit 1 when any Catalyst object is invalid. Other kinds are ignored.
    Validate {
        /// Files or directories of YAML manifests (multi-document files are fine).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
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
    }
}

fn write_crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = catalyst::crd::all();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, crd) in crds {
                let path = dir.join(file);
                std::fs::write(&path, catalyst::crd::to_yaml(&crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let documents: Vec<String> = crds.iter().map(|(_, crd)| catalyst::crd::to_yaml(crd)).collect();
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
