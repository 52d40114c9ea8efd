//! One compose service as the replica template, resources and count of a ServiceGroup, with a
//! warning for everything it says that does not map. Where Kompose (v1.38.0, the tool users
//! know for this) maps a field, it maps at least as Kompose does; the differences are in
//! `docs/src/guide/migration.md`.

use super::dotenv;
use super::interpolate::Unset;
use super::units::{self, kind};
use catalyst_api::group::{ReplicaStorage, ReplicaTemplate, ReplicaVolume};
use k8s_openapi::api::core::v1::{ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, Probe, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Map, Value};

/// A YAML map, as read.
type Mapping = Map<String, Value>;
use std::collections::BTreeMap;

/// What a service becomes, before services that differ only by an index fold together.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub replicas: u64,
    pub cpu: u32,
    pub memory: Quantity,
    pub template: ReplicaTemplate,
}

/// What the service's conversion needs from around it.
pub struct Around<'a> {
    pub variables: &'a BTreeMap<String, String>,
    /// Reads an `env_file`, by the path the compose file gives (relative to its directory).
    pub read: &'a dyn Fn(&str) -> Result<String, String>,
    /// The compose file's top-level `volumes`.
    pub volumes: Option<&'a Mapping>,
}

/// What Kompose makes of a named volume whose size nothing says (`PVCRequestSize`,
/// pkg/transformer/kubernetes/kubernetes.go, kompose v1.38.0).
pub const DEFAULT_VOLUME_SIZE: &str = "100Mi";

/// The keys a ServiceGroup maps; every other key of a service is reported.
const MAPPED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "healthcheck",
    "volumes",
    "tmpfs",
    "restart",
    "cpus",
    "cpuset",
    "mem_limit",
    "mem_reservation",
    "deploy",
    "scale",
    "pull_policy",
];

/// Why a key does not map, for the keys users most often have.
fn why_not(key: &str) -> &'static str {
    match key {
        "networks" | "network_mode" | "links" | "extra_hosts" | "dns" | "mac_address" => {
            "replicas are on the cluster's pod network; reach a group through its headless Service"
        }
        "depends_on" => "replicas start in any order; have each wait for what it needs",
        "container_name" | "hostname" => "replicas are named <group>-1 ... <group>-N",
        "privileged" | "cap_add" | "cap_drop" | "devices" | "security_opt" | "pid" | "ipc" | "userns_mode" => {
            "Catalyst gives replicas no host privileges or devices"
        }
        "build" => "a ServiceGroup runs an image: push the built image and name it in image",
        "labels" => "compose labels are container metadata; add pod labels in template.labels",
        _ => "no ServiceGroup field holds it",
    }
}

/// Converts one service (`name` for messages); errors name the field.
pub fn convert(
    name: &str,
    service: &Mapping,
    around: &Around,
    unset: &mut Unset,
    warnings: &mut Vec<(String, String)>,
) -> Result<Converted, Vec<String>> {
    let mut errors = Vec::new();
    let mut warn = |message: String| warnings.push((name.to_string(), message));
    let get = |key: &str| service.get(key);
    for (key, _) in service {
        let key = key.as_str();
        if !MAPPED.contains(&key) && !key.starts_with("x-") {
            warn(format!("{key} is not mapped: {}", why_not(key)));
        }
    }
    let mut template = ReplicaTemplate::default();
    match get("image") {
        Some(Value::String(image)) if !image.is_empty() => template.image = image.clone(),
        Some(other) if !matches!(other, Value::String(_)) => {
            errors.push(format!("image: expected a string, found {}", kind(other)))
        }
        _ => errors.push("image: a ServiceGroup runs an image, and this service names none".into()),
    }
    match get("pull_policy").and_then(Value::as_str) {
        Some("always") => template.image_pull_policy = Some("Always".into()),
        Some("never") => template.image_pull_policy = Some("Never".into()),
        Some("missing" | "if_not_present") => template.image_pull_policy = Some("IfNotPresent".into()),
        Some(other) => {
            warn(format!("pull_policy {other} is not mapped: Kubernetes pulls Always, IfNotPresent or Never"))
        }
        None => {}
    }
    for (key, into) in [("entrypoint", &mut template.command), ("command", &mut template.args)] {
        match get(key).map(words) {
            Some(Ok(list)) => *into = list,
            Some(Err(message)) => errors.push(format!("{key}: {message}")),
            None => {}
        }
    }
    template.env = environment(service, around, unset, &mut warn).unwrap_or_else(|message| {
        errors.push(message);
        Vec::new()
    });
    match ports(service, &mut warn) {
        Ok(ports) => template.ports = ports,
        Err(message) => errors.push(message),
    }
    match get("healthcheck").map(healthcheck) {
        Some(Ok(Some(probe))) => {
            template.liveness_probe = Some(probe.clone());
            template.readiness_probe = Some(probe);
        }
        Some(Err(message)) => errors.push(format!("healthcheck: {message}")),
        _ => {}
    }
    if let Err(message) = volumes(service, around, &mut template, &mut warn) {
        errors.push(message);
    }
    match get("restart").and_then(Value::as_str) {
        Some("no") => warn("restart no is not kept: a ServiceGroup's replicas always restart".into()),
        Some(policy) if policy.starts_with("on-failure") => {
            warn(format!("restart {policy} becomes always: a ServiceGroup's replicas always restart"))
        }
        _ => {}
    }
    let resources = resources(service, &mut warn);
    if let Err(message) = &resources {
        errors.push(message.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (replicas, cpu, memory) = resources.unwrap_or_default();
    Ok(Converted { replicas, cpu, memory: Quantity(units::quantity(memory)), template })
}

/// A string split as a shell would (compose-go splits with shellwords), or a list.
fn words(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(text) => shlex::split(text).ok_or_else(|| format!("{text:?} has a quote that never closes")),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Err(format!("expected a string or a list, found {}", kind(other))),
    }
}

/// A scalar as the string a container sees.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, found {}", kind(other))),
    }
}

/// `env_file` entries in order, then `environment` over them (compose: environment wins).
fn environment(
    service: &Mapping,
    around: &Around,
    unset: &mut Unset,
    warn: &mut impl FnMut(String),
) -> Result<Vec<EnvVar>, String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let files = match service.get("env_file") {
        None => Vec::new(),
        Some(Value::String(path)) => vec![(path.clone(), true)],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(path) => Ok((path.clone(), true)),
                Value::Object(long) => {
                    let path = long.get("path").and_then(Value::as_str).ok_or("env_file: an entry without its path")?;
                    Ok((path.to_string(), long.get("required").and_then(Value::as_bool).unwrap_or(true)))
                }
                other => Err(format!("env_file: expected a path, found {}", kind(other))),
            })
            .collect::<Result<_, String>>()?,
        Some(other) => return Err(format!("env_file: expected a path or a list, found {}", kind(other))),
    };
    for (path, required) in files {
        match (around.read)(&path) {
            Ok(text) => {
                for (key, value) in dotenv::parse(&path, &text, around.variables, unset).map_err(|e| e.to_string())? {
                    set(&mut merged, key, value);
                }
            }
            Err(error) if required => return Err(format!("env_file {path}: {error}")),
            Err(_) => {}
        }
    }
    let from_shell = |key: &str, warn: &mut dyn FnMut(String)| match around.variables.get(key) {
        Some(value) => Some(value.clone()),
        None => {
            warn(format!("environment {key} has no value here and is left out"));
            None
        }
    };
    match service.get("environment") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                let entry = scalar(item).map_err(|m| format!("environment: {m}"))?;
                match entry.split_once('=') {
                    Some((key, value)) => set(&mut merged, key.to_string(), value.to_string()),
                    None => {
                        if let Some(value) = from_shell(&entry, warn) {
                            set(&mut merged, entry, value);
                        }
                    }
                }
            }
        }
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let key = key.clone();
                match value {
                    // Null: the shell's value, else what an env_file gave, else left out.
                    Value::Null if around.variables.get(&key).is_none() && merged.iter().any(|(k, _)| *k == key) => {}
                    Value::Null => {
                        if let Some(value) = from_shell(&key, warn) {
                            set(&mut merged, key, value);
                        }
                    }
                    value => {
                        set(&mut merged, key.clone(), scalar(value).map_err(|m| format!("environment.{key}: {m}"))?)
                    }
                }
            }
        }
        Some(other) => return Err(format!("environment: expected a list or a map, found {}", kind(other))),
    }
    Ok(merged.into_iter().map(|(name, value)| EnvVar { name, value: Some(value), value_from: None }).collect())
}

/// Sets `key`, in place if it is set already (a later file or `environment` wins).
fn set(merged: &mut Vec<(String, String)>, key: String, value: String) {
    match merged.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => merged.push((key, value)),
    }
}

/// Container ports: `ports` (short `[IP:][HOST:]CONTAINER[/PROTOCOL]` with ranges, or long) and
/// `expose`. Host ports are reported: a replica is reached by its pod IP or its group's Service.
fn ports(service: &Mapping, warn: &mut impl FnMut(String)) -> Result<Vec<ContainerPort>, String> {
    let mut out: Vec<ContainerPort> = Vec::new();
    let mut add = |port: i32, protocol: &str, name: Option<String>| {
        let protocol = protocol.to_ascii_uppercase();
        if !out.iter().any(|p| p.container_port == port && p.protocol.as_deref() == Some(protocol.as_str())) {
            out.push(ContainerPort {
                container_port: port,
                protocol: Some(protocol),
                name,
                ..ContainerPort::default()
            });
        }
    };
    let mut host_ports = Vec::new();
    if let Some(list) = service.get("ports") {
        let Value::Array(items) = list else { return Err(format!("ports: expected a list, found {}", kind(list))) };
        for item in items {
            match item {
                Value::Object(long) => {
                    let target = long.get("target").ok_or("ports: a long-syntax port without its target")?;
                    let target = port_number(&scalar(target).map_err(|m| format!("ports: {m}"))?)?;
                    let protocol = long.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
                    let name = long.get("name").and_then(Value::as_str).map(str::to_string);
                    add(target, protocol, name);
                    if let Some(published) = long.get("published") {
                        host_ports.push(scalar(published).unwrap_or_default());
                    }
                }
                short => {
                    let text = scalar(short).map_err(|m| format!("ports: {m}"))?;
                    let (spec, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
                    let (host, container) = match spec.rsplit_once(':') {
                        Some((host, container)) => (Some(host), container),
                        None => (None, spec),
                    };
                    for port in port_range(container)? {
                        add(port, protocol, None);
                    }
                    if let Some(host) = host {
                        host_ports.push(host.to_string());
                    }
                }
            }
        }
    }
    if let Some(Value::Array(items)) = service.get("expose") {
        for item in items {
            let text = scalar(item).map_err(|m| format!("expose: {m}"))?;
            let (spec, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
            for port in port_range(spec)? {
                add(port, protocol, None);
            }
        }
    }
    if !host_ports.is_empty() {
        warn(format!(
            "host port(s) {} are not mapped: reach a replica by its pod IP or the group's headless Service",
            host_ports.join(", ")
        ));
    }
    Ok(out)
}

fn port_number(text: &str) -> Result<i32, String> {
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| format!("ports: {text:?} is not a port"))
}

/// `8080` or `8000-8005` (at most 1,000 ports, so a typo cannot make a million).
fn port_range(text: &str) -> Result<Vec<i32>, String> {
    match text.split_once('-') {
        None => Ok(vec![port_number(text)?]),
        Some((first, last)) => {
            let (first, last) = (port_number(first)?, port_number(last)?);
            if first > last || last - first >= 1000 {
                return Err(format!("ports: {text:?} is not a range of at most 1,000 ports"));
            }
            Ok((first..=last).collect())
        }
    }
}

/// A compose healthcheck as a probe, its timings as compose's defaults give them (interval 30s,
/// timeout 30s, retries 3, start_period 0s: `05-services.md`, healthcheck). Kompose runs a
/// `CMD-SHELL` test without a shell; here it runs under `/bin/sh -c`, as Docker runs it.
fn healthcheck(value: &Value) -> Result<Option<Probe>, String> {
    let Value::Object(check) = value else { return Err(format!("expected a map, found {}", kind(value))) };
    if check.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let shell = |command: String| vec!["/bin/sh".to_string(), "-c".to_string(), command];
    let command = match check.get("test") {
        None => return Ok(None),
        Some(Value::String(text)) => shell(text.clone()),
        Some(Value::Array(items)) => {
            let words: Vec<String> = items.iter().map(scalar).collect::<Result<_, _>>()?;
            match words.split_first() {
                Some((first, _)) if first == "NONE" => return Ok(None),
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => rest.to_vec(),
                Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => shell(rest.join(" ")),
                _ => return Err("test: a list starts with NONE, CMD or CMD-SHELL and names a command".into()),
            }
        }
        Some(other) => return Err(format!("test: expected a string or a list, found {}", kind(other))),
    };
    let seconds = |key: &str, default: f64| -> Result<i32, String> {
        let value = check.get(key).map(units::seconds).transpose().map_err(|m| format!("{key}: {m}"))?;
        Ok(value.unwrap_or(default).ceil().clamp(0.0, i32::MAX as f64) as i32)
    };
    let retries = check.get("retries").map(units::count).transpose().map_err(|m| format!("retries: {m}"))?;
    Ok(Some(Probe {
        exec: Some(ExecAction { command: Some(command) }),
        period_seconds: Some(seconds("interval", 30.0)?.max(1)),
        timeout_seconds: Some(seconds("timeout", 30.0)?.max(1)),
        failure_threshold: Some(retries.unwrap_or(3).clamp(1, i32::MAX as u64) as i32),
        initial_delay_seconds: Some(seconds("start_period", 0.0)?),
        ..Probe::default()
    }))
}

/// A volume or mount name Kubernetes accepts (a DNS label).
fn volume_name(text: &str) -> String {
    let name = crate::names::dns_label(text);
    if name.is_empty() { "data".into() } else { name }
}

/// Named volumes become each replica's own storage (as Kompose's StatefulSet makes a
/// volumeClaimTemplate of each), anonymous ones and `tmpfs` scratch space; bind mounts are
/// reported (the VM-node has no such path).
fn volumes(
    service: &Mapping,
    around: &Around,
    template: &mut ReplicaTemplate,
    warn: &mut impl FnMut(String),
) -> Result<(), String> {
    let labels = |mapping: Option<&Mapping>, key: &str| -> Option<String> {
        let labels = mapping?.get("labels")?;
        match labels {
            Value::Object(map) => map.get(key).and_then(|v| scalar(v).ok()),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .find_map(|l| l.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string())),
            _ => None,
        }
    };
    let scratch = |target: &str, memory: Option<Quantity>, template: &mut ReplicaTemplate| {
        let name = volume_name(&format!("scratch-{}", template.volumes.len() + 1));
        template.volumes.push(ReplicaVolume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: memory.is_some().then(|| "Memory".to_string()),
                size_limit: memory.filter(|q| q.0 != "0"),
            }),
            ..ReplicaVolume::default()
        });
        template.volume_mounts.push(VolumeMount { name, mount_path: target.to_string(), ..VolumeMount::default() });
    };
    if let Some(tmpfs) = service.get("tmpfs") {
        let targets = match tmpfs {
            Value::Array(items) => {
                items.iter().map(scalar).collect::<Result<Vec<_>, _>>().map_err(|m| format!("tmpfs: {m}"))?
            }
            other => vec![scalar(other).map_err(|m| format!("tmpfs: {m}"))?],
        };
        for target in targets {
            let target = target.split(':').next().unwrap_or_default().to_string();
            scratch(&target, Some(Quantity("0".into())), template);
        }
    }
    let Some(list) = service.get("volumes") else { return Ok(()) };
    let Value::Array(items) = list else { return Err(format!("volumes: expected a list, found {}", kind(list))) };
    for item in items {
        let (kind_of, source, target, size) = match item {
            Value::String(short) => {
                let mut parts = short.splitn(3, ':');
                let first = parts.next().unwrap_or_default().to_string();
                match parts.next() {
                    None => ("volume".to_string(), None, first, None),
                    Some(target) => {
                        let bind = first.starts_with(['/', '.', '~']);
                        (if bind { "bind" } else { "volume" }.to_string(), Some(first), target.to_string(), None)
                    }
                }
            }
            Value::Object(long) => {
                let text = |key: &str| long.get(key).and_then(Value::as_str).map(str::to_string);
                let target = text("target").ok_or("volumes: a long-syntax volume without its target")?;
                let size = long.get("tmpfs").and_then(|t| t.get("size")).map(units::bytes).transpose()?;
                (text("type").unwrap_or_else(|| "volume".into()), text("source"), target, size)
            }
            other => return Err(format!("volumes: expected a string or a map, found {}", kind(other))),
        };
        match (kind_of.as_str(), source) {
            ("volume", Some(source)) => {
                let declared = around.volumes.and_then(|v| v.get(source.as_str())).and_then(Value::as_object);
                let from_labels = |key: &str| labels(declared, key).or_else(|| labels(Some(service), key));
                let size = match from_labels("kompose.volume.size") {
                    Some(size) => size,
                    None => {
                        warn(format!(
                            "volume {source} is given {DEFAULT_VOLUME_SIZE} per replica, as Kompose gives it: set its size in template.storage"
                        ));
                        DEFAULT_VOLUME_SIZE.to_string()
                    }
                };
                template.storage.push(ReplicaStorage {
                    name: volume_name(&source),
                    mount_path: target,
                    size: Quantity(size),
                    storage_class_name: from_labels("kompose.volume.storage-class-name"),
                });
            }
            ("volume", None) => scratch(&target, None, template),
            ("tmpfs", _) => scratch(&target, Some(Quantity(units::quantity(size.unwrap_or(0)))), template),
            (other, source) => warn(format!(
                "{other} mount {} on {target} is not mapped: the VM-node has no such path; put the files in a ConfigMap or Secret and mount it in template.volumes",
                source.unwrap_or_default()
            )),
        }
    }
    Ok(())
}

/// Replicas, whole cores and memory per replica. Limits are what a replica gets: a
/// ServiceGroup's replicas are Guaranteed, so a reservation that differs from the limit is
/// reported. Kompose maps `deploy.resources` only (not `cpus`, `mem_limit`, `cpuset`); these are
/// read too, and must agree with `deploy` as compose-go requires (`loader/validate.go`).
fn resources(service: &Mapping, warn: &mut impl FnMut(String)) -> Result<(u64, u32, u64), String> {
    let deploy = service.get("deploy").and_then(Value::as_object);
    let resource = |section: &str, key: &str| {
        deploy.and_then(|d| d.get("resources")).and_then(|r| r.get(section)).and_then(|s| s.get(key))
    };
    if let Some(deploy) = deploy {
        for (key, _) in deploy {
            let key = key.as_str();
            if !["replicas", "resources"].contains(&key) {
                warn(format!(
                    "deploy.{key} is not mapped: {}",
                    match key {
                        "mode" => "a ServiceGroup runs N replicas in one VM",
                        "placement" => "a ServiceGroup runs in the VM named by spec.vm",
                        _ => "no ServiceGroup field holds it",
                    }
                ));
            }
        }
    }
    let agree = |name: &str,
                 top: Option<&Value>,
                 deployed: Option<&Value>,
                 read: &dyn Fn(&Value) -> Result<f64, String>|
     -> Result<Option<f64>, String> {
        let top = top.map(read).transpose().map_err(|m| format!("{name}: {m}"))?;
        let deployed = deployed.map(read).transpose().map_err(|m| format!("deploy.resources of {name}: {m}"))?;
        match (top, deployed) {
            (Some(a), Some(b)) if a != b => {
                Err(format!("{name} ({a}) and deploy.resources ({b}) disagree, as compose refuses"))
            }
            (a, b) => Ok(a.or(b)),
        }
    };
    let as_f64 = |f: fn(&Value) -> Result<u64, String>| move |v: &Value| f(v).map(|n| n as f64);
    let replicas = agree("scale", service.get("scale"), deploy.and_then(|d| d.get("replicas")), &as_f64(units::count))?;
    let cpus = agree("cpus", service.get("cpus"), resource("limits", "cpus"), &units::cpus)?;
    let reserved_cpus = resource("reservations", "cpus").map(units::cpus).transpose()?;
    let cpuset = match service.get("cpuset") {
        Some(value) => {
            let text = scalar(value).map_err(|m| format!("cpuset: {m}"))?;
            let count = catalyst_core::cpuset::CpuSet::parse(&text).map_err(|m| format!("cpuset {text:?}: {m}"))?.len();
            warn(format!("cpuset {text} is not kept: the VM-node's kubelet chooses each replica's {count} core(s)"));
            Some(count as f64)
        }
        None => None,
    };
    let cpus = cpus.or(reserved_cpus).or(cpuset).filter(|c| *c > 0.0).ok_or(
        "cpus: no CPU count (cpus, deploy.resources.limits.cpus or cpuset): a ServiceGroup pins whole dedicated cores",
    )?;
    let cores = cpus.ceil();
    if cores != cpus {
        warn(format!("cpus {cpus} becomes {cores} whole core(s): a ServiceGroup pins whole cores"));
    }
    let memory = agree("mem_limit", service.get("mem_limit"), resource("limits", "memory"), &|v| {
        units::bytes(v).map(|b| b as f64)
    })?;
    let reserved =
        agree("mem_reservation", service.get("mem_reservation"), resource("reservations", "memory"), &|v| {
            units::bytes(v).map(|b| b as f64)
        })?;
    let memory = match (memory, reserved) {
        (Some(limit), Some(reserved)) if limit != reserved => {
            warn(format!(
                "mem_reservation {} is dropped: each replica gets exactly its limit {} (Guaranteed QoS)",
                units::quantity(reserved as u64),
                units::quantity(limit as u64)
            ));
            limit
        }
        (Some(limit), _) => limit,
        (None, Some(reserved)) => {
            warn(format!("no mem_limit: each replica gets its reservation {} as its limit", units::quantity(reserved as u64)));
            reserved
        }
        (None, None) => return Err("mem_limit: no memory (mem_limit or deploy.resources.limits.memory): a ServiceGroup gives each replica fixed memory".into()),
    };
    let cores = u32::try_from(cores as u64).map_err(|_| format!("cpus: {cpus} is too many cores"))?;
    Ok((replicas.unwrap_or(1.0) as u64, cores, memory as u64))
}
