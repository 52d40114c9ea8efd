//! `kubectl catalyst import openstack`: the JSON that `openstack flavor list --long -f json`,
//! `openstack server list --long -f json` and `openstack hypervisor list --long -f json` print,
//! as CatalystVMs (one per server: its flavor's cores, memory, disk and extra specs) and
//! CatalystHosts (one per hypervisor). The columns are python-openstackclient's (10.2.1,
//! `openstackclient/compute/v2/{flavor,server,hypervisor}.py`), older forms included:
//! `Properties` as a string (OSC 5.4 and before), `Flavor Name`/`Flavor ID` (compute API below
//! 2.47). Units are Nova's: RAM and hypervisor memory in MiB, disk in GiB (nova 33.0.0
//! `api-ref/source/parameters.yaml`).

pub mod extra_specs;

use crate::compose::units::quantity;
use crate::names;
use catalyst_api::{CatalystHost, CatalystVM};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The annotations that keep what a name was in OpenStack.
pub const NAME_ANNOTATION: &str = "catalyst.io/openstack-name";
pub const ID_ANNOTATION: &str = "catalyst.io/openstack-id";
pub const FLAVOR_ANNOTATION: &str = "catalyst.io/openstack-flavor";
pub const HOST_ANNOTATION: &str = "catalyst.io/openstack-host";

/// What an import needs: the three outputs' texts and how the VMs boot and join.
pub struct Request<'a> {
    pub flavors: &'a str,
    pub servers: &'a str,
    pub hypervisors: Option<&'a str>,
    pub namespace: &'a str,
    /// The boot disk each VM gets: a DataVolume of the flavor's disk size, of this class,
    /// imported from this image (Glance images are not visible in these outputs).
    pub storage_class: &'a str,
    pub image_url: &'a str,
    /// The join Secret and Kubernetes release that make each VM a node; `None` leaves the VMs
    /// as VMs only.
    pub node: Option<(&'a str, &'a str)>,
}

#[derive(Debug)]
pub struct Imported {
    pub hosts: Vec<CatalystHost>,
    pub vms: Vec<CatalystVM>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{what}: not the JSON list `openstack {command} -f json` prints: {message}")]
    NotAList { what: &'static str, command: &'static str, message: String },
    #[error("{}", .0.join("\n"))]
    Rows(Vec<String>),
}

/// A row of `-f json` output.
type Row = serde_json::Map<String, Value>;

fn rows(text: &str, what: &'static str, command: &'static str) -> Result<Vec<Row>, ImportError> {
    let failed = |message: String| ImportError::NotAList { what, command, message };
    if text.len() as u64 > catalyst_core::yaml::MAX_INPUT_BYTES {
        return Err(failed(format!("{} bytes is more than this import reads", text.len())));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| failed(e.to_string()))?;
    let Value::Array(items) = value else { return Err(failed("expected a list".into())) };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(row) => Ok(row),
            other => Err(failed(format!("expected objects in the list, found {other}"))),
        })
        .collect()
}

fn text<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn number(row: &Row, column: &str) -> Option<u64> {
    match row.get(column)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `Properties`: an object (OSC 5.5 and later), or `key='value', ...` (`format_dict`, before).
fn properties(row: &Row) -> BTreeMap<String, String> {
    match row.get("Properties") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect(),
        Some(Value::String(legacy)) => legacy_properties(legacy),
        _ => BTreeMap::new(),
    }
}

/// `hw:cpu_policy='dedicated', hw:numa_nodes='1'`: split at each `, key='` boundary, so a value
/// holding `, ` still reads whole.
fn legacy_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once("='") {
        let mut end = after.len();
        let mut search = 0;
        while let Some(at) = after[search..].find("', ") {
            let candidate = search + at;
            let next = &after[candidate + 3..];
            if next.split_once("='").is_some_and(|(k, _)| !k.contains(['\'', ' '])) {
                end = candidate;
                break;
            }
            search = candidate + 3;
        }
        let value = after[..end].strip_suffix('\'').unwrap_or(&after[..end]);
        out.insert(key.trim().to_string(), value.to_string());
        rest = after.get(end + 3..).unwrap_or("");
    }
    out
}

/// The flavors, the servers, the hypervisors as Catalyst objects; errors name the row and column.
pub fn import(request: &Request) -> Result<Imported, ImportError> {
    let flavors = rows(request.flavors, "flavors", "flavor list --long --all")?;
    let servers = rows(request.servers, "servers", "server list --long --all-projects")?;
    let hypervisors = match request.hypervisors {
        Some(text) => rows(text, "hypervisors", "--os-compute-api-version 2.87 hypervisor list --long")?,
        None => Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let hosts =
        hypervisors.iter().filter_map(|row| host(row, &mut warnings).map_err(|e| errors.push(e)).ok()).collect();
    let mut specs_read = BTreeMap::new();
    let mut vms = Vec::new();
    for server in &servers {
        match vm(server, &flavors, request, &mut specs_read, &mut warnings) {
            Ok(vm) => vms.push(vm),
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(ImportError::Rows(errors));
    }
    if !hypervisors.is_empty() {
        warnings.push(
            "the hosts' reserve, NUMA cells and hugepage pools are not in these outputs: set spec.reserved (nova.conf \
             reserved_host_cpus, reserved_host_memory_mb), spec.numa and spec.hugepages (the kernel's hugepages= boot \
             parameter) on each CatalystHost"
                .into(),
        );
    }
    Ok(Imported { hosts, vms, warnings })
}

/// A hypervisor as a CatalystHost. Its vCPUs and memory are printed only below compute API 2.88.
fn host(row: &Row, warnings: &mut Vec<String>) -> Result<CatalystHost, String> {
    let hostname = text(row, "Hypervisor Hostname").ok_or("a hypervisor without its Hypervisor Hostname")?;
    let name = names::dns_subdomain(hostname);
    let cpus = number(row, "vCPUs").filter(|n| *n > 0);
    let memory = number(row, "Memory MB").filter(|n| *n > 0);
    let (Some(cpus), Some(memory)) = (cpus, memory) else {
        return Err(format!(
            "hypervisor {hostname}: no vCPUs or Memory MB (compute API 2.88 and later leave them out, and libvirt counts \
             0 vCPUs where cpu_dedicated_set pins them): run `openstack --os-compute-api-version 2.87 hypervisor list \
             --long -f json`, or write the host's capacity into a CatalystHost by hand"
        ));
    };
    let schedulable = text(row, "State") != Some("down");
    if !schedulable {
        warnings.push(format!("hypervisor {hostname} is down: its CatalystHost takes no new VMs (schedulable: false)"));
    }
    let host = json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost",
        "metadata": {"name": name, "annotations": {NAME_ANNOTATION: hostname}},
        "spec": {
            "nodeName": name,
            "capacity": {"cpu": cpus, "memory": quantity(memory << 20)},
            "schedulable": schedulable,
        },
    });
    let host: CatalystHost = serde_json::from_value(host).map_err(|e| format!("hypervisor {hostname}: {e}"))?;
    catalyst_core::validation::validate_host(&host).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        format!("hypervisor {hostname}: {}", errors.join("; "))
    })?;
    Ok(host)
}

/// A server as a CatalystVM, from its flavor (by `Flavor`, the name; or `Flavor ID`).
fn vm(
    server: &Row,
    flavors: &[Row],
    request: &Request,
    specs_read: &mut BTreeMap<String, extra_specs::Asked>,
    warnings: &mut Vec<String>,
) -> Result<CatalystVM, String> {
    let original = text(server, "Name").ok_or("a server without its Name")?;
    let name = names::dns_label(original);
    if name.is_empty() {
        return Err(format!("server {original}: no part of its name makes a Kubernetes name"));
    }
    let flavor = match (text(server, "Flavor").or_else(|| text(server, "Flavor Name")), text(server, "Flavor ID")) {
        (Some(wanted), _) => flavors.iter().find(|f| text(f, "Name") == Some(wanted)),
        (None, Some(id)) => flavors.iter().find(|f| text(f, "ID") == Some(id)),
        (None, None) => None,
    }
    .ok_or_else(|| {
        format!(
            "server {original}: its flavor is not in the flavors (a private flavor is listed only by `openstack flavor list --long --all`)"
        )
    })?;
    let flavor_name = text(flavor, "Name").unwrap_or_default().to_string();
    let asked = specs_read
        .entry(flavor_name.clone())
        .or_insert_with(|| extra_specs::read(&flavor_name, &properties(flavor), &mut |w| warnings.push(w)))
        .clone();
    let missing = |column: &str| format!("flavor {flavor_name}: no {column}");
    let cpus = number(flavor, "VCPUs").filter(|n| *n > 0).ok_or_else(|| missing("VCPUs"))?;
    let ram = number(flavor, "RAM").filter(|n| *n > 0).ok_or_else(|| missing("RAM"))?;
    let disk = number(flavor, "Disk").unwrap_or(0);
    let disk = if disk == 0 {
        warnings.push(format!(
            "server {original}: flavor {flavor_name} has no root disk (it boots from a volume or takes the image's size): its boot disk is 20Gi"
        ));
        20
    } else {
        disk
    };
    for column in ["Ephemeral", "Swap"] {
        if number(flavor, column).is_some_and(|n| n > 0) {
            warnings.push(format!("flavor {flavor_name}: {column} disk is not mapped: a CatalystVM has one boot disk"));
        }
    }
    let mut annotations = BTreeMap::from([(NAME_ANNOTATION, original.to_string()), (FLAVOR_ANNOTATION, flavor_name)]);
    if let Some(id) = text(server, "ID") {
        annotations.insert(ID_ANNOTATION, id.to_string());
    }
    if let Some(host) = text(server, "Host") {
        annotations.insert(HOST_ANNOTATION, host.to_string());
    }
    let halted = text(server, "Status") == Some("SHUTOFF");
    let mut spec = json!({
        "cpu": cpus,
        "memory": quantity(ram << 20),
        "isolateEmulatorThread": asked.isolate_emulator_thread,
        "bootDisk": {"dataVolume": {
            "storageClassName": request.storage_class, "size": format!("{disk}Gi"), "imageUrl": request.image_url,
        }},
        "runStrategy": if halted { "Halted" } else { "Always" },
    });
    if let Some(size) = asked.hugepages {
        spec["hugepages"] = serde_json::to_value(size).unwrap_or(Value::Null);
    }
    if asked.numa_passthrough {
        spec["numaPassthrough"] = json!(true);
    }
    if let Some((secret, version)) = request.node {
        spec["node"] = json!({"joinSecretName": secret, "software": {"kubernetesVersion": version}});
    }
    let vm = json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
        "metadata": {"name": name, "namespace": request.namespace, "annotations": annotations},
        "spec": spec,
    });
    let vm: CatalystVM = serde_json::from_value(vm).map_err(|e| format!("server {original}: {e}"))?;
    catalyst_core::validation::validate_vm(&vm).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        format!(
            "server {original} (flavor {}, {cpus} vCPUs, {ram} MiB): {}",
            text(flavor, "Name").unwrap_or_default(),
            errors.join("; ")
        )
    })?;
    Ok(vm)
}

#[cfg(test)]
mod tests {
    use super::legacy_properties;

    #[test]
    fn legacy_properties_split_at_each_key() {
        let read = legacy_properties("hw:cpu_policy='shared', hw:numa_nodes='1', pci_passthrough:alias='a:1, b:2'");
        assert_eq!(read["hw:cpu_policy"], "shared");
        assert_eq!(read["hw:numa_nodes"], "1");
        assert_eq!(read["pci_passthrough:alias"], "a:1, b:2");
        assert!(legacy_properties("").is_empty());
    }
}
