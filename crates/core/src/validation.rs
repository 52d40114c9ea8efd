//! Offline validation: the CRDs' rules (see [`catalyst_api::rules`]) plus the checks CEL cannot
//! express, as plain Rust, so `kubectl catalyst validate` and the planner refuse what the API
//! server would refuse, with a message that names the object, the field, the value and the rule.

use crate::key::ObjectKey;
use crate::quantity::{QuantityError, parse_bytes};
use crate::release::Release;
use catalyst_api::rules::{self, CelRule};
use catalyst_api::vm::SoftwareSource;
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use std::fmt;

/// Kind, namespace and name of an object, printed as `CatalystVM team-a/kafka-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of<K: kube::Resource<DynamicType = ()>>(object: &K) -> Self {
        Self { kind: K::kind(&()).into_owned(), namespace: object.namespace(), name: object.name_any() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One broken rule on one field of one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {field} = {value}: {message}")]
pub struct FieldError {
    pub object: ObjectRef,
    /// Path from the object's root, such as `spec.reserved.cpu`.
    pub field: String,
    /// The offending value as the user wrote it.
    pub value: String,
    /// The rule, in words.
    pub message: String,
    /// The CEL rule the API server enforces for the same thing, when there is one.
    pub cel_rule: Option<&'static str>,
}

/// The errors of one object in one line for a condition: `field = value: rule; ...`.
pub fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{} = {}: {}", e.field, e.value, e.message)).collect::<Vec<_>>().join("; ")
}

/// Collects the errors of one object.
struct Checker {
    object: ObjectRef,
    errors: Vec<FieldError>,
}

impl Checker {
    fn new(object: ObjectRef) -> Self {
        Self { object, errors: Vec::new() }
    }

    fn fail(&mut self, field: &str, value: impl fmt::Display, rule: &'static CelRule) {
        self.push(field, value, rule.message.to_string(), Some(rule.cel));
    }

    /// A check the API server makes from the OpenAPI schema (not CEL), or one only this tool makes.
    fn fail_schema(&mut self, field: &str, value: impl fmt::Display, message: impl Into<String>) {
        self.push(field, value, message.into(), None);
    }

    fn push(&mut self, field: &str, value: impl fmt::Display, message: String, cel_rule: Option<&'static str>) {
        self.errors.push(FieldError {
            object: self.object.clone(),
            field: field.to_string(),
            value: value.to_string(),
            message,
            cel_rule,
        });
    }

    fn check(&mut self, ok: bool, field: &str, value: impl fmt::Display, rule: &'static CelRule) {
        if !ok {
            self.fail(field, value, rule);
        }
    }

    fn non_empty(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.fail_schema(field, "\"\"", "must not be empty");
        }
    }

    /// Checks a quantity's sign and format (the schema's `pattern` and `minimum`, which the API
    /// server checks first) and returns its bytes when it parses, so that rules comparing it
    /// with other fields still run (as CEL's do, guarded by `isQuantity`).
    fn quantity(&mut self, field: &str, quantity: &Quantity, sign: Sign) -> Option<u64> {
        match parse_bytes(&quantity.0) {
            Ok(0) if sign == Sign::Positive => {
                self.fail_schema(field, &quantity.0, sign.message());
                Some(0)
            }
            Ok(bytes) => Some(bytes),
            Err(QuantityError::Syntax(_) | QuantityError::Negative(_)) => {
                self.fail_schema(field, format!("{:?}", quantity.0), sign.message());
                None
            }
            Err(error @ QuantityError::Overflow(_)) => {
                self.fail_schema(field, &quantity.0, error.to_string());
                None
            }
        }
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() { Ok(()) } else { Err(self.errors) }
    }
}

/// Which quantities a field takes: `rules::POSITIVE_QUANTITY_PATTERN` or `rules::QUANTITY_PATTERN`.
#[derive(Clone, Copy, PartialEq)]
enum Sign {
    Positive,
    NonNegative,
}

impl Sign {
    fn message(self) -> &'static str {
        match self {
            Sign::Positive => "must be a positive quantity such as 512Gi",
            Sign::NonNegative => "must be a quantity such as 64Gi (0 or more)",
        }
    }
}

/// The most NUMA cells a host may declare (the CRD's maxItems).
pub const MAX_NUMA_CELLS: usize = 16;

pub fn validate_host(host: &CatalystHost) -> Result<(), Vec<FieldError>> {
    let mut c = Checker::new(ObjectRef::of(host));
    let spec = &host.spec;
    c.non_empty("spec.nodeName", &spec.node_name);
    let capacity_memory = c.quantity("spec.capacity.memory", &spec.capacity.memory, Sign::Positive);
    if let Some(storage) = &spec.capacity.storage {
        c.quantity("spec.capacity.storage", storage, Sign::Positive);
    }
    let reserved_memory = c.quantity("spec.reserved.memory", &spec.reserved.memory, Sign::NonNegative);
    c.check(
        spec.reserved.cpu < spec.capacity.cpu,
        "spec.reserved.cpu",
        spec.reserved.cpu,
        &rules::HOST_RESERVED_CPU_BELOW_CAPACITY,
    );
    if let (Some(reserved), Some(capacity)) = (reserved_memory, capacity_memory) {
        c.check(
            reserved < capacity,
            "spec.reserved.memory",
            &spec.reserved.memory.0,
            &rules::HOST_RESERVED_MEMORY_BELOW_CAPACITY,
        );
    }
    if let (Some(reserved), Some(capacity)) = (reserved_memory, capacity_memory)
        && capacity < 8 << 60
    {
        let pools = spec.hugepages.bytes();
        c.check(
            pools <= capacity - reserved.min(capacity),
            "spec.hugepages",
            crate::quantity::format_bytes(pools),
            &rules::HOST_HUGEPAGES_WITHIN_MEMORY,
        );
    }
    if spec.numa.len() > MAX_NUMA_CELLS {
        c.fail_schema(
            "spec.numa",
            format!("{} cells", spec.numa.len()),
            format!("at most {MAX_NUMA_CELLS} NUMA cells"),
        );
    }
    let mut numa_memory = Some(0u64);
    for (i, cell) in spec.numa.iter().enumerate() {
        let cell_memory = c.quantity(&format!("spec.numa[{i}].memory"), &cell.memory, Sign::Positive);
        numa_memory = numa_memory.zip(cell_memory).map(|(sum, cell)| sum.saturating_add(cell));
    }
    if !spec.numa.is_empty() {
        let numa_cpu: u64 = spec.numa.iter().map(|cell| u64::from(cell.cpu)).sum();
        c.check(
            numa_cpu <= u64::from(spec.capacity.cpu),
            "spec.numa",
            format!("{numa_cpu} cores in all"),
            &rules::HOST_NUMA_CPU_WITHIN_CAPACITY,
        );
        // CEL cannot add quantities up over a list, so only the offline check catches this one.
        if let (Some(sum), Some(capacity)) = (numa_memory, capacity_memory)
            && sum > capacity
        {
            c.fail_schema(
                "spec.numa",
                format!("{} in all", crate::quantity::format_bytes(sum)),
                "the NUMA cells' memory must add up to no more than capacity memory",
            );
        }
    }
    if !spec.numa.is_empty() {
        let reserved: Vec<Option<u32>> = spec.numa.iter().map(|cell| cell.reserved_cpu).collect();
        let given: u64 = reserved.iter().flatten().map(|&r| u64::from(r)).sum();
        let all_or_none = reserved.iter().all(Option::is_some) || reserved.iter().all(Option::is_none);
        c.check(
            all_or_none && (reserved[0].is_none() || given == u64::from(spec.reserved.cpu)),
            "spec.numa",
            format!("reservedCpu adding up to {given}"),
            &rules::HOST_NUMA_RESERVED_CPU,
        );
        let pools: Vec<Option<&catalyst_api::host::HostHugepages>> =
            spec.numa.iter().map(|cell| cell.hugepages.as_ref()).collect();
        let sum = |size: fn(&catalyst_api::host::HostHugepages) -> u32| -> u64 {
            pools.iter().flatten().map(|p| u64::from(size(p))).sum()
        };
        let (ones, twos) = (sum(|p| p.pages_1gi), sum(|p| p.pages_2mi));
        let pools_ok = pools.iter().all(Option::is_none)
            || (pools.iter().all(Option::is_some)
                && ones == u64::from(spec.hugepages.pages_1gi)
                && twos == u64::from(spec.hugepages.pages_2mi));
        c.check(
            pools_ok,
            "spec.numa",
            format!("hugepages adding up to {ones} of 1Gi and {twos} of 2Mi"),
            &rules::HOST_NUMA_HUGEPAGES,
        );
        let threads = spec.threads_per_core.max(1);
        c.check(
            spec.numa.iter().all(|cell| cell.cpu.is_multiple_of(threads)),
            "spec.numa",
            format!(
                "cells of {:?} CPUs, {threads} threads per core",
                spec.numa.iter().map(|c| c.cpu).collect::<Vec<_>>()
            ),
            &rules::HOST_NUMA_WHOLE_CORES,
        );
        c.check(
            spec.kubelet.topology_manager_policy == catalyst_api::host::TopologyManagerPolicy::None
                || spec.numa.len() <= MAX_TOPOLOGY_CELLS,
            "spec.numa",
            format!("{} cells", spec.numa.len()),
            &rules::HOST_TOPOLOGY_MANAGER_CELLS,
        );
        for (i, cell) in spec.numa.iter().enumerate() {
            if let Some(reserved) = cell.reserved_cpu
                && reserved > cell.cpu
            {
                c.fail_schema(
                    &format!("spec.numa[{i}].reservedCpu"),
                    reserved,
                    format!("more than the cell's {} CPUs", cell.cpu),
                );
            }
        }
    }
    c.finish()
}

/// The most NUMA cells a kubelet's topology manager takes (kubernetes
/// `pkg/kubelet/cm/topologymanager/topology_manager.go`, `defaultMaxAllowableNUMANodes`).
pub const MAX_TOPOLOGY_CELLS: usize = 8;

pub fn validate_vm(vm: &CatalystVM) -> Result<(), Vec<FieldError>> {
    let mut c = Checker::new(ObjectRef::of(vm));
    let spec = &vm.spec;
    let memory = c.quantity("spec.memory", &spec.memory, Sign::Positive);
    if let (Some(size), Some(memory)) = (spec.hugepages, memory) {
        c.check(memory.is_multiple_of(size.bytes()), "spec.memory", &spec.memory.0, &rules::VM_MEMORY_WHOLE_PAGES);
    }
    for (key, value) in &spec.node.labels {
        let field = format!("spec.node.labels[{key:?}]");
        if let Err(why) = qualified_name(key) {
            c.fail_schema(&field, key, format!("not a label key: {why}"));
        } else if let Err(why) = kubelet_may_set(key) {
            c.fail_schema(&field, key, why);
        }
        if let Err(why) = label_value(value) {
            c.fail_schema(&field, format!("{value:?}"), format!("not a label value: {why}"));
        }
    }
    c.check(
        !spec.numa_passthrough || spec.hugepages.is_some(),
        "spec.numaPassthrough",
        spec.numa_passthrough,
        &rules::VM_NUMA_PASSTHROUGH_NEEDS_HUGEPAGES,
    );
    if let Some(host) = &spec.host {
        c.non_empty("spec.host", host);
    }
    c.check(
        spec.node.reserved_cpu < spec.cpu,
        "spec.node.reservedCpu",
        spec.node.reserved_cpu,
        &rules::VM_NODE_RESERVED_CPU_BELOW_CPU,
    );
    let reserved_memory = c.quantity("spec.node.reservedMemory", &spec.node.reserved_memory, Sign::NonNegative);
    c.quantity("spec.node.headroom.cpu", &spec.node.headroom.cpu, Sign::NonNegative);
    c.quantity("spec.node.headroom.memory", &spec.node.headroom.memory, Sign::NonNegative);
    if let (Some(reserved), Some(memory)) = (reserved_memory, memory) {
        c.check(
            reserved < memory,
            "spec.node.reservedMemory",
            &spec.node.reserved_memory.0,
            &rules::VM_NODE_RESERVED_MEMORY_BELOW_MEMORY,
        );
    }
    if let Some(name) = &spec.network.multus_network_name {
        c.check(is_multus_network_name(name), "spec.network.multusNetworkName", name, &rules::VM_MULTUS_NETWORK_NAME);
    }
    c.check(
        spec.node.join_secret_name.is_none() || spec.node.software.is_some(),
        "spec.node.software",
        "none",
        &rules::VM_NODE_JOIN_NEEDS_SOFTWARE,
    );
    if let Some(software) = &spec.node.software {
        let version = &software.kubernetes_version;
        let field = "spec.node.software.kubernetesVersion";
        c.check(Release::parse(version).is_some(), field, version, &rules::VM_KUBERNETES_VERSION);
        if let Some(repository) = &software.repository {
            c.check(
                software.source == SoftwareSource::Install,
                "spec.node.software.repository",
                &repository.url,
                &rules::VM_SOFTWARE_REPOSITORY_ONLY_TO_INSTALL,
            );
            c.check(
                is_package_repository_url(&repository.url),
                "spec.node.software.repository.url",
                &repository.url,
                &rules::VM_PACKAGE_REPOSITORY_URL,
            );
        }
    }
    let disk = &spec.boot_disk;
    let sources = [disk.container_disk.is_some(), disk.data_volume.is_some(), disk.persistent_volume_claim.is_some()];
    let set = sources.iter().filter(|set| **set).count();
    c.check(set == 1, "spec.bootDisk", format!("{set} sources"), &rules::BOOT_DISK_ONE_SOURCE);
    if let Some(image) = &disk.container_disk {
        c.non_empty("spec.bootDisk.containerDisk.image", &image.image);
    }
    if let Some(volume) = &disk.data_volume {
        c.quantity("spec.bootDisk.dataVolume.size", &volume.size, Sign::Positive);
        c.non_empty("spec.bootDisk.dataVolume.storageClassName", &volume.storage_class_name);
        c.non_empty("spec.bootDisk.dataVolume.imageUrl", &volume.image_url);
    }
    let label = node_name(vm);
    if label.len() > MAX_LABEL_VALUE {
        c.fail_schema(
            "metadata.name",
            vm.name_any(),
            format!("the node label value {label:?} (name.namespace) must be at most {MAX_LABEL_VALUE} characters"),
        );
    }
    if let Some(claim) = &disk.persistent_volume_claim {
        c.non_empty("spec.bootDisk.persistentVolumeClaim.claimName", &claim.claim_name);
    }
    c.finish()
}

/// The rules of a change to a CatalystVM (those with `oldSelf`): `new` must keep them given `old`.
pub fn validate_vm_update(old: &CatalystVM, new: &CatalystVM) -> Result<(), Vec<FieldError>> {
    let mut c = Checker::new(ObjectRef::of(new));
    let placed = old.status.as_ref().and_then(|s| s.host.as_deref());
    if let (Some(placed), Some(pin)) = (placed, new.spec.host.as_deref())
        && old.spec.host.as_deref() != Some(pin)
        && pin != placed
    {
        c.fail("spec.host", pin, &rules::VM_PLACED_HOST_IS_FIXED);
    }
    c.finish()
}

/// The longest value a Kubernetes label may have (apimachinery `validation.LabelValueMaxLength`).
const MAX_LABEL_VALUE: usize = 63;
/// Lowercase letters and digits at both ends, and `middle` characters between.
fn lowercase_word(text: &str, middle: fn(char) -> bool) -> bool {
    let end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    end(text.chars().next())
        && end(text.chars().last())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || middle(c))
}

/// [`rules::VM_MULTUS_NETWORK_NAME`]'s expression: an optional DNS-label namespace and `/`,
/// then a name of lowercase letters, digits, `-` and `.`.
fn is_multus_network_name(text: &str) -> bool {
    let name_ok = |name: &str| lowercase_word(name, |c| c == '-' || c == '.');
    match text.split_once('/') {
        Some((namespace, name)) => lowercase_word(namespace, |c| c == '-') && name_ok(name),
        None => name_ok(text),
    }
}

/// [`rules::VM_PACKAGE_REPOSITORY_URL`]'s expression: `http://` or `https://`, a host of letters,
/// digits, `.` and `-`, maybe a port, then path segments of letters, digits and `._~%+:@-`.
fn is_package_repository_url(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else { return false };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = authority.split_once(':').map_or((authority, None), |(h, p)| (h, Some(p)));
    let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~%+:@-/".contains(&b));
    host_ok && port_ok && path_ok
}

/// The longest DNS subdomain, a label key's prefix (apimachinery `validation.DNS1123SubdomainMaxLength`).
const MAX_SUBDOMAIN: usize = 253;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a qualified name and a label
/// value (apimachinery `validation.qualifiedNameFmt`, `labelValueFmt`).
fn is_label_name(text: &str) -> bool {
    let alphanumeric_ends = |t: &str| {
        t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && t.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    alphanumeric_ends(text) && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS-1123 subdomain: dot-separated lowercase labels (apimachinery `IsDNS1123Subdomain`).
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= MAX_SUBDOMAIN
        && text.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Checks a label key as the API server does (apimachinery `validation.IsQualifiedName`, as
/// `IsValidLabelKey` uses it): an optional DNS-subdomain prefix and `/`, then a name of 1 to
/// 63 characters. The reason, when it is not one.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "the prefix {prefix:?} must be a lowercase DNS subdomain of at most {MAX_SUBDOMAIN} characters"
        ));
    }
    if name.is_empty() || name.len() > MAX_LABEL_VALUE || !is_label_name(name) {
        return Err(format!(
            "the name must be 1 to {MAX_LABEL_VALUE} alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// The labels in the `kubernetes.io` and `k8s.io` namespaces a kubelet may set on its own Node
/// (`k8s.io/kubelet/pkg/apis/well_known_labels.go`, `kubeletLabels`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Whether the kubelet accepts `key` in `--node-labels`: it refuses to start on a key in the
/// `kubernetes.io` or `k8s.io` namespaces unless the key is one of [`KUBELET_LABELS`] or its
/// namespace is `kubelet.kubernetes.io` or `node.kubernetes.io` (or under them)
/// (`cmd/kubelet/app/options/options.go`, `ValidateKubeletFlags`, and `IsKubeletLabel`).
pub fn kubelet_may_set(key: &str) -> Result<(), String> {
    let Some((namespace, _)) = key.split_once('/') else { return Ok(()) };
    let within = |domain: &str| namespace == domain || namespace.ends_with(&format!(".{domain}"));
    if !within("kubernetes.io") && !within("k8s.io") {
        return Ok(());
    }
    if KUBELET_LABELS.contains(&key) || within("kubelet.kubernetes.io") || within("node.kubernetes.io") {
        return Ok(());
    }
    Err(format!(
        "the kubelet refuses to start with {key:?} in --node-labels: of the kubernetes.io and k8s.io namespaces it may set only \
         kubelet.kubernetes.io/, node.kubernetes.io/ and the well-known labels (such as topology.kubernetes.io/zone)"
    ))
}

/// Checks a label value as the API server does (apimachinery `validation.IsValidLabelValue`):
/// empty, or up to 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= MAX_LABEL_VALUE && is_label_name(value)) {
        return Ok(());
    }
    Err(format!(
        "must be empty or 1 to {MAX_LABEL_VALUE} alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    ))
}

/// The name of the node a VM becomes, and the value of the `catalyst.io/vm` label on it (one
/// format for both): `name.namespace`, unique in the cluster.
pub fn node_name(vm: &CatalystVM) -> String {
    format!("{}.{}", vm.name_any(), vm.namespace().unwrap_or_default())
}

/// The key of the CatalystVM a node was made for, from its [`node_name`] or its
/// `catalyst.io/vm` label: a namespace has no dots, so the last one splits.
pub fn vm_of_node(value: &str) -> Option<ObjectKey> {
    let (name, namespace) = value.rsplit_once('.')?;
    (!name.is_empty() && !namespace.is_empty()).then(|| ObjectKey::namespaced(namespace, name))
}

/// The longest name a replica's pod may have: pod names become hostnames, which are DNS labels.
const MAX_REPLICA_NAME: usize = 63;

pub fn validate_group(group: &ServiceGroup) -> Result<(), Vec<FieldError>> {
    let mut c = Checker::new(ObjectRef::of(group));
    let spec = &group.spec;
    c.non_empty("spec.vm", &spec.vm);
    c.quantity("spec.memory", &spec.memory, Sign::Positive);
    c.non_empty("spec.template.image", &spec.template.image);
    for (i, storage) in spec.template.storage.iter().enumerate() {
        c.quantity(&format!("spec.template.storage[{i}].size"), &storage.size, Sign::Positive);
    }
    let longest = format!("{}-{}", group.name_any(), spec.replicas.max(1));
    if longest.len() > MAX_REPLICA_NAME {
        c.fail_schema(
            "metadata.name",
            group.name_any(),
            format!("replica names such as {longest:?} must be at most {MAX_REPLICA_NAME} characters"),
        );
    }
    c.finish()
}

/// Bytes of a hugepage size the CRD allows (2Mi or 1Gi).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_leads_back_to_its_vm_even_when_the_vm_name_has_dots() {
        let mut vm = vm_with_labels(&[]);
        vm.metadata.name = Some("sms.v2".into());
        assert_eq!(node_name(&vm), "sms.v2.team");
        assert_eq!(vm_of_node(&node_name(&vm)), Some(ObjectKey::namespaced("team", "sms.v2")));
        assert_eq!(vm_of_node("no-namespace"), None);
        assert_eq!(vm_of_node(".team"), None);
    }

    fn vm_with_labels(labels: &[(&str, &str)]) -> CatalystVM {
        let mut vm: CatalystVM = serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
            "metadata": {"name": "a", "namespace": "team"},
            "spec": {"cpu": 4, "memory": "8Gi", "bootDisk": {"containerDisk": {"image": "img"}}}
        }))
        .unwrap();
        vm.spec.node.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vm
    }

    fn messages(vm: &CatalystVM) -> Vec<String> {
        validate_vm(vm).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn node_labels_are_checked_as_the_api_server_and_the_kubelet_check_them() {
        let fine = [
            ("team", "billing"),
            ("example.com/tier", "gold"),
            ("node.kubernetes.io/pool", "fast"),
            ("topology.kubernetes.io/zone", "a"),
            ("empty", ""),
        ];
        assert_eq!(messages(&vm_with_labels(&fine)), Vec::<String>::new());
        // The kubelet refuses to start with this one (cmd/kubelet/app/options/options.go).
        let role = messages(&vm_with_labels(&[("node-role.kubernetes.io/worker", "")]));
        assert!(role[0].contains("the kubelet refuses to start"), "{role:?}");
        // A value that would inject a second label into --node-labels.
        let injected = messages(&vm_with_labels(&[("foo", "bar,baz=1")]));
        assert!(injected[0].contains("not a label value"), "{injected:?}");
        let bad_key = messages(&vm_with_labels(&[("Bad Key", "x")]));
        assert!(bad_key[0].contains("not a label key"), "{bad_key:?}");
        let long = "x".repeat(64);
        assert!(messages(&vm_with_labels(&[("a", &long)]))[0].contains("not a label value"));
    }
}
