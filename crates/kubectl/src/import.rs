//! `kubectl catalyst import`: what users have, printed as Catalyst objects (YAML that
//! `validate` and `plan` take as it is), with what does not map on stderr. The files are read
//! here; the conversion is `catalyst_import`'s.

use anyhow::Context;
use catalyst_import::compose;
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
    if size > catalyst_core::manifest::bounds::MAX_INPUT_BYTES {
        return Err(format!("{size} bytes is more than {} bytes", catalyst_core::manifest::bounds::MAX_INPUT_BYTES));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
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
    let documents: Vec<String> = imported.groups.iter().map(serde_norway::to_string).collect::<Result<_, _>>()?;
    print!("{}", documents.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
