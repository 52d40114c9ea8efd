//! `kubectl catalyst import compose`: the services of a docker-compose file as ServiceGroups
//! of one CatalystVM. Read as Docker Compose reads it (interpolation, `.env`, `env_file`, byte
//! values, durations), mapped where Kompose maps (and where it does not, for what pinned whole
//! cores need: `cpus`, `mem_limit`, `cpuset`), and folded where services differ only by an
//! index. What does not map is reported per service, never dropped silently.
//!
//! Why no compose crate (compared for issue 23, in `docs/src/guide/migration.md`):
//! docker-compose-types 0.24 refuses a service's `cpus` and `cpuset` (the fields this import is
//! for) and keeps byte values as strings; compose_spec 0.3 (dormant since 2024) reads byte values
//! 1000-based where Docker reads them 1024-based, refuses `0.5G`, `2.5s` and `on-failure:3`, and
//! pulls in serde_yaml. Neither interpolates. The subset read here is small and follows the
//! Specification and compose-go field by field.

pub mod dotenv;
pub mod fold;
pub mod interpolate;
pub mod service;
pub mod units;

use catalyst_api::ServiceGroup;
use catalyst_api::group::ServiceGroupSpec;
use catalyst_core::yaml;
use interpolate::Unset;
use serde_json::{Map, Value};

/// A YAML map, as read.
type Mapping = Map<String, Value>;
use std::collections::BTreeMap;

/// The annotation that keeps the compose services a group came from.
pub const SERVICES_ANNOTATION: &str = "catalyst.io/compose-services";

/// What an import needs.
pub struct Request<'a> {
    /// The compose file's text, and its name for messages.
    pub text: &'a str,
    pub file: &'a str,
    /// The CatalystVM the groups run in, and its namespace.
    pub vm: &'a str,
    pub namespace: &'a str,
    /// The variables interpolation reads: the shell's, and the `.env` file's under them.
    pub variables: &'a BTreeMap<String, String>,
    /// Reads an `env_file` by the path the compose file gives.
    pub read: &'a dyn Fn(&str) -> Result<String, String>,
    /// Import only these services (by their compose names); all when empty.
    pub only: &'a [String],
}

/// The groups, and what did not map.
#[derive(Debug)]
pub struct Imported {
    pub groups: Vec<ServiceGroup>,
    /// Per service, what is not mapped and what was changed on the way; unset variables.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {size} bytes is more than the {max} bytes a compose file may have")]
    TooLarge { file: String, size: usize, max: u64 },
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: {message}")]
    NotCompose { file: String, message: String },
    #[error("{file}: {source}")]
    Interpolation {
        file: String,
        #[source]
        source: interpolate::InterpolationError,
    },
    #[error("{file}: {}", .errors.join("\n"))]
    Services { file: String, errors: Vec<String> },
}

/// The compose file as ServiceGroups; nothing is written, whatever the answer.
pub fn import(request: &Request) -> Result<Imported, ImportError> {
    let file = request.file.to_string();
    let text = request.text;
    if text.len() as u64 > yaml::MAX_INPUT_BYTES {
        return Err(ImportError::TooLarge { file, size: text.len(), max: yaml::MAX_INPUT_BYTES });
    }
    // The parser's first line says where and what (its budgets refuse what nests too deep).
    let not_yaml = |error: yaml::Error| ImportError::Yaml { file: file.clone(), message: yaml::describe(&error) };
    let mut document: Value = yaml::from_str(text).map_err(not_yaml)?;
    let mut unset = Unset::default();
    interpolate::interpolate(&mut document, request.variables, "", &mut unset)
        .map_err(|source| ImportError::Interpolation { file: file.clone(), source })?;
    let not_compose = |message: &str| ImportError::NotCompose { file: file.clone(), message: message.into() };
    let top = document.as_object().ok_or_else(|| not_compose("not a compose file: expected a map with services"))?;
    let services = top
        .get("services")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| not_compose("no services: a compose file lists them under services"))?;
    let mut warnings = Vec::new();
    for (key, _) in top {
        match key.as_str() {
            key @ ("secrets" | "configs") => warnings
                .push(format!("top-level {key} is not mapped: mount Secrets and ConfigMaps in template.volumes")),
            "networks" => warnings.push("top-level networks is not mapped: replicas are on the pod network".into()),
            _ => {}
        }
    }
    let mut per_service = Vec::new();
    let around = service::Around {
        variables: request.variables,
        read: request.read,
        volumes: top.get("volumes").and_then(Value::as_object),
    };
    let mut converted = Vec::new();
    let mut errors = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if let Some(missing) = request.only.iter().find(|name| !services.contains_key(name.as_str())) {
        return Err(not_compose(&format!("no service {missing} in this file")));
    }
    for (name, body) in services {
        let name = name.clone();
        if !request.only.is_empty() && !request.only.contains(&name) {
            continue;
        }
        let empty = Mapping::new();
        let body = match body {
            Value::Object(body) => body,
            Value::Null => &empty,
            other => {
                errors.push(format!("service {name}: expected a map, found {}", units::kind(other)));
                continue;
            }
        };
        // Two services whose names read as one DNS label would be one group written twice.
        let label = crate::names::dns_label(&name);
        if let Some(first) = labels.insert(label.clone(), name.clone()) {
            errors.push(format!("services {first} and {name} are both named {label} in Kubernetes: rename one"));
            continue;
        }
        match service::convert(&name, body, &around, &mut unset, &mut per_service) {
            Ok(c) => converted.push((label, c)),
            Err(messages) => errors.extend(messages.into_iter().map(|m| format!("service {name}: {m}"))),
        }
    }
    warnings.extend(merged(per_service));
    for (name, first_use) in &unset.0 {
        warnings.push(format!("variable {name} is not set (first used at {first_use}): it reads as empty"));
    }
    if !errors.is_empty() {
        return Err(ImportError::Services { file, errors });
    }
    let groups = fold::fold(converted, &mut |note| warnings.push(note))
        .into_iter()
        .map(|group| service_group(group, request))
        .collect::<Vec<_>>();
    let invalid: Vec<String> = groups
        .iter()
        .filter_map(|g| catalyst_core::validation::validate_group(g).err())
        .flatten()
        .map(|e| e.to_string())
        .collect();
    if !invalid.is_empty() {
        return Err(ImportError::Services { file, errors: invalid });
    }
    Ok(Imported { groups, warnings })
}

/// Per-service warnings, those that several services share said once for them all.
fn merged(per_service: Vec<(String, String)>) -> Vec<String> {
    let mut by_message: Vec<(String, Vec<String>)> = Vec::new();
    for (service, message) in per_service {
        match by_message.iter_mut().find(|(m, _)| *m == message) {
            Some((_, services)) => services.push(service),
            None => by_message.push((message, vec![service])),
        }
    }
    by_message
        .into_iter()
        .map(|(message, mut services)| {
            services.sort_by(|a, b| natural(a).cmp(&natural(b)));
            (message, services)
        })
        .map(|(message, services)| match services.as_slice() {
            [one] => format!("service {one}: {message}"),
            many => format!("services {}: {message}", many.join(", ")),
        })
        .collect()
}

/// A name ordered as a person orders it: `sms-2` before `sms-10`.
fn natural(name: &str) -> (&str, u64) {
    let (stem, number) = fold::trailing_digits(name);
    (stem, number.parse().unwrap_or(0))
}

fn service_group(group: fold::Group, request: &Request) -> ServiceGroup {
    let converted = group.converted;
    let mut object = ServiceGroup::new(
        &group.name,
        ServiceGroupSpec {
            vm: request.vm.to_string(),
            replicas: i32::try_from(converted.replicas).unwrap_or(i32::MAX),
            cpu: converted.cpu,
            memory: converted.memory,
            template: converted.template,
            pinning: Default::default(),
        },
    );
    object.metadata.namespace = Some(request.namespace.to_string());
    object.metadata.annotations = Some(BTreeMap::from([(SERVICES_ANNOTATION.to_string(), group.services.join(","))]));
    object
}
