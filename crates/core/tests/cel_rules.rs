//! Every CEL rule in the CRDs compiles where it sits, is exercised by an object that keeps it
//! and one that breaks it, and agrees with the offline Rust validation on those same objects.

use catalyst_api::rules;
use catalyst_core::validation::{FieldError, validate_group, validate_host, validate_vm, validate_vm_update};
use kube::core::cel::{ErrorKind, ScopeContext, Validator, WarningKind, analyze_rule, compile_schema};
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn schema_of(kind: &str) -> Value {
    let crd = catalyst_core::crd::of_kind(kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
    let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
    serde_json::to_value(schema).unwrap()
}

fn valid(kind: &str) -> Value {
    match kind {
        "CatalystHost" => json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": "host-1"},
            "spec": {
                "nodeName": "node-1",
                "capacity": {"cpu": 256, "memory": "2Ti", "storage": "40T"},
                "reserved": {"cpu": 8, "memory": "64Gi"},
                "numa": [{"cpu": 128, "memory": "1Ti"}, {"cpu": 128, "memory": "1Ti"}],
                "hugepages": {"pages1Gi": 1024}
            }
        }),
        "CatalystVM" => json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
            "metadata": {"name": "kafka-1", "namespace": "messaging"},
            "spec": {
                "cpu": 96, "memory": "512Gi", "hugepages": "1Gi", "numaPassthrough": true,
                "bootDisk": {"dataVolume": {"storageClassName": "ceph-rbd", "size": "100Gi", "imageUrl": "docker://quay.io/containerdisks/ubuntu:22.04"}},
                "node": {"reservedCpu": 2, "reservedMemory": "8Gi", "joinSecretName": "catalyst-join",
                         "software": {"kubernetesVersion": "v1.34.2", "source": "Install",
                                      "repository": {"url": "https://mirror.example.com/kubernetes/core:/stable:/v1.34/deb/"}}},
                "network": {"multusNetworkName": "infra/hosts-lan.v4"}
            }
        }),
        "ServiceGroup" => json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup",
            "metadata": {"name": "sms", "namespace": "messaging"},
            "spec": {
                "vm": "sms-services", "replicas": 12, "cpu": 8, "memory": "42Gi",
                "template": {"image": "catalyst/sms-service:v3.0",
                             "storage": [{"name": "spool", "mountPath": "/spool", "size": "10Gi"}]}
            }
        }),
        other => panic!("unknown kind {other}"),
    }
}

/// Sets `value` at a dotted path such as `spec.reserved.cpu` (`numa.0.cpu` indexes a list).
fn with(mut object: Value, path: &str, value: Value) -> Value {
    let mut node = &mut object;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = match part.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[*part],
        };
    }
    let last = parts[parts.len() - 1];
    if value.is_null() {
        node.as_object_mut().unwrap().remove(last);
    } else {
        node[last] = value;
    }
    object
}

/// The CEL rules an object breaks, as (field, message), evaluated with a real CEL implementation
/// (kube-cel, with Kubernetes' quantity and list libraries) exactly where the CRD places them.
fn cel_failures(kind: &str, object: &Value) -> BTreeSet<(String, String)> {
    cel_update_failures(kind, None, object)
}

/// The rules a change from `old` (none on a create) to `new` breaks, in CEL: with an old
/// object the transition rules (`oldSelf`) are evaluated too.
fn cel_update_failures(kind: &str, old: Option<&Value>, new: &Value) -> BTreeSet<(String, String)> {
    match Validator::new().validate(&schema_of(kind), new, old) {
        Ok(()) => BTreeSet::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                assert_eq!(
                    e.kind,
                    ErrorKind::ValidationFailure,
                    "rule {:?} did not evaluate cleanly: {}",
                    e.rule,
                    e.message
                );
                // kube-cel joins a root rule's fieldPath to the empty root path as `.spec.host`;
                // the API server reports `spec.host`.
                (e.field_path.trim_start_matches('.').to_string(), e.message.clone())
            })
            .collect(),
    }
}

/// A VM change: old spec.host, old status.host, new spec.host, and whether it is refused.
type HostChange = (Option<&'static str>, Option<&'static str>, Option<&'static str>, bool);

const VM_HOST_CHANGES: [HostChange; 7] = [
    (None, None, Some("h2"), false),       // not placed yet: pin freely
    (Some("h1"), None, Some("h2"), false), // not placed yet: re-pin freely
    (None, Some("h1"), Some("h2"), true),  // placed on h1: another host is refused
    (Some("h1"), Some("h1"), Some("h2"), true),
    (None, Some("h1"), Some("h1"), false),       // naming the host it runs on
    (Some("h1"), Some("h1"), None, false),       // removing the pin
    (Some("h2"), Some("h1"), Some("h2"), false), // an old mismatch is left as it was
];

fn vm_with_host(spec_host: Option<&str>, status_host: Option<&str>) -> Value {
    let mut vm = valid("CatalystVM");
    if let Some(host) = spec_host {
        vm["spec"]["host"] = json!(host);
    }
    if let Some(host) = status_host {
        vm["status"] = json!({"host": host});
    }
    vm
}

#[test]
fn a_placed_vm_cannot_be_pinned_elsewhere_in_cel_and_in_rust() {
    let refused = BTreeSet::from([("spec.host".to_string(), rules::VM_PLACED_HOST_IS_FIXED.message.to_string())]);
    for (old_pin, placed, new_pin, is_refused) in VM_HOST_CHANGES {
        let old = vm_with_host(old_pin, placed);
        let new = vm_with_host(new_pin, placed);
        let expected = if is_refused { refused.clone() } else { BTreeSet::new() };
        let label = format!("pin {old_pin:?} -> {new_pin:?} while placed on {placed:?}");
        assert_eq!(cel_update_failures("CatalystVM", Some(&old), &new), expected, "CEL on {label}");
        let rust: BTreeSet<(String, String)> = validate_vm_update(
            &serde_json::from_value(old.clone()).unwrap(),
            &serde_json::from_value(new.clone()).unwrap(),
        )
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect();
        assert_eq!(rust, expected, "Rust on {label}");
    }
}

/// The CEL-backed rules the offline Rust validation says the same object breaks.
fn rust_failures(kind: &str, object: &Value) -> BTreeSet<(String, String)> {
    let result: Result<(), Vec<FieldError>> = match kind {
        "CatalystHost" => validate_host(&serde_json::from_value(object.clone()).unwrap()),
        "CatalystVM" => validate_vm(&serde_json::from_value(object.clone()).unwrap()),
        "ServiceGroup" => validate_group(&serde_json::from_value(object.clone()).unwrap()),
        other => panic!("unknown kind {other}"),
    };
    result
        .err()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.cel_rule.is_some())
        .map(|e| (e.field, e.message))
        .collect()
}

struct Case {
    kind: &'static str,
    path: &'static str,
    value: Value,
    broken: &'static [(&'static str, &'static rules::CelRule)],
}

fn cases() -> Vec<Case> {
    use rules::*;
    let case = |kind, path, value, broken| Case { kind, path, value, broken };
    vec![
        case(
            "CatalystHost",
            "spec.capacity.cpu",
            json!(0),
            &[("spec.reserved.cpu", &HOST_RESERVED_CPU_BELOW_CAPACITY), ("spec.numa", &HOST_NUMA_CPU_WITHIN_CAPACITY)],
        ),
        case(
            "CatalystHost",
            "spec.capacity.memory",
            json!("0"),
            &[
                ("spec.reserved.memory", &HOST_RESERVED_MEMORY_BELOW_CAPACITY),
                ("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY),
            ],
        ),
        case(
            "CatalystHost",
            "spec.reserved.cpu",
            json!(256),
            &[("spec.reserved.cpu", &HOST_RESERVED_CPU_BELOW_CAPACITY)],
        ),
        case(
            "CatalystHost",
            "spec.reserved.memory",
            json!("2Ti"),
            &[
                ("spec.reserved.memory", &HOST_RESERVED_MEMORY_BELOW_CAPACITY),
                ("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY),
            ],
        ),
        case("CatalystHost", "spec.numa.0.cpu", json!(129), &[("spec.numa", &HOST_NUMA_CPU_WITHIN_CAPACITY)]),
        case(
            "CatalystHost",
            "spec.hugepages.pages1Gi",
            json!(1985),
            &[("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY)],
        ),
        case(
            "CatalystHost",
            "spec.hugepages.pages2Mi",
            json!(491_521),
            &[("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY)],
        ),
        // Per-cell reserved CPUs on one cell only, and per-cell pools that do not add up.
        case("CatalystHost", "spec.numa.0.reservedCpu", json!(8), &[("spec.numa", &HOST_NUMA_RESERVED_CPU)]),
        case(
            "CatalystHost",
            "spec.numa",
            json!([{"cpu": 128, "memory": "1Ti", "reservedCpu": 4, "hugepages": {"pages1Gi": 512}},
                   {"cpu": 128, "memory": "1Ti", "reservedCpu": 4, "hugepages": {"pages1Gi": 511}}]),
            &[("spec.numa", &HOST_NUMA_HUGEPAGES)],
        ),
        case("CatalystHost", "spec.threadsPerCore", json!(3), &[("spec.numa", &HOST_NUMA_WHOLE_CORES)]),
        case(
            "CatalystHost",
            "spec",
            json!({
                "nodeName": "node-1",
                "capacity": {"cpu": 256, "memory": "2Ti", "storage": "40T"},
                "numa": vec![json!({"cpu": 16, "memory": "64Gi"}); 9],
                "kubelet": {"topologyManagerPolicy": "restricted"}
            }),
            &[("spec.numa", &HOST_TOPOLOGY_MANAGER_CELLS)],
        ),
        case("CatalystVM", "spec.cpu", json!(0), &[("spec.node.reservedCpu", &VM_NODE_RESERVED_CPU_BELOW_CPU)]),
        case(
            "CatalystVM",
            "spec.memory",
            json!("0Gi"),
            &[("spec.node.reservedMemory", &VM_NODE_RESERVED_MEMORY_BELOW_MEMORY)],
        ),
        case("CatalystVM", "spec.memory", json!("9217Mi"), &[("spec.memory", &VM_MEMORY_WHOLE_PAGES)]),
        case(
            "CatalystVM",
            "spec.network.multusNetworkName",
            json!("Infra/lan"),
            &[("spec.network.multusNetworkName", &VM_MULTUS_NETWORK_NAME)],
        ),
        case(
            "CatalystVM",
            "spec.network.multusNetworkName",
            json!("infra/lan-"),
            &[("spec.network.multusNetworkName", &VM_MULTUS_NETWORK_NAME)],
        ),
        case(
            "CatalystVM",
            "spec.node.software.kubernetesVersion",
            json!("1.34"),
            &[("spec.node.software.kubernetesVersion", &VM_KUBERNETES_VERSION)],
        ),
        case(
            "CatalystVM",
            "spec.node.software.kubernetesVersion",
            json!("v1.34.2; rm -rf /"),
            &[("spec.node.software.kubernetesVersion", &VM_KUBERNETES_VERSION)],
        ),
        // kubeadm reads JoinConfiguration v1beta4 from v1.31.
        case(
            "CatalystVM",
            "spec.node.software.kubernetesVersion",
            json!("v1.30.4"),
            &[("spec.node.software.kubernetesVersion", &VM_KUBERNETES_VERSION)],
        ),
        case("CatalystVM", "spec.node.software", Value::Null, &[("spec.node.software", &VM_NODE_JOIN_NEEDS_SOFTWARE)]),
        case(
            "CatalystVM",
            "spec.node.software.source",
            json!("Prepared"),
            &[("spec.node.software.repository", &VM_SOFTWARE_REPOSITORY_ONLY_TO_INSTALL)],
        ),
        case(
            "CatalystVM",
            "spec.node.software.repository.url",
            json!("http://mirror/$(reboot)/"),
            &[("spec.node.software.repository.url", &VM_PACKAGE_REPOSITORY_URL)],
        ),
        case(
            "CatalystVM",
            "spec.node.software.repository.url",
            json!("ftp://mirror.example.com/"),
            &[("spec.node.software.repository.url", &VM_PACKAGE_REPOSITORY_URL)],
        ),
        case(
            "CatalystVM",
            "spec.hugepages",
            Value::Null,
            &[("spec.numaPassthrough", &VM_NUMA_PASSTHROUGH_NEEDS_HUGEPAGES)],
        ),
        case(
            "CatalystVM",
            "spec.node.reservedCpu",
            json!(96),
            &[("spec.node.reservedCpu", &VM_NODE_RESERVED_CPU_BELOW_CPU)],
        ),
        case(
            "CatalystVM",
            "spec.node.reservedMemory",
            json!("512Gi"),
            &[("spec.node.reservedMemory", &VM_NODE_RESERVED_MEMORY_BELOW_MEMORY)],
        ),
        case(
            "CatalystVM",
            "spec.bootDisk.containerDisk",
            json!({"image": "quay.io/containerdisks/ubuntu:22.04"}),
            &[("spec.bootDisk", &BOOT_DISK_ONE_SOURCE)],
        ),
        case("CatalystVM", "spec.bootDisk.dataVolume", Value::Null, &[("spec.bootDisk", &BOOT_DISK_ONE_SOURCE)]),
        // Quantities are int-or-string: integers (bytes) compare with strings and with each other.
        case(
            "CatalystHost",
            "spec.reserved.memory",
            json!(2_199_023_255_552u64),
            &[
                ("spec.reserved.memory", &HOST_RESERVED_MEMORY_BELOW_CAPACITY),
                ("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY),
            ],
        ),
        case(
            "CatalystHost",
            "spec.capacity.memory",
            json!(68_719_476_736u64),
            &[
                ("spec.reserved.memory", &HOST_RESERVED_MEMORY_BELOW_CAPACITY),
                ("spec.hugepages", &HOST_HUGEPAGES_WITHIN_MEMORY),
            ],
        ),
        case(
            "CatalystVM",
            "spec.node.reservedMemory",
            json!(549_755_813_888u64),
            &[("spec.node.reservedMemory", &VM_NODE_RESERVED_MEMORY_BELOW_MEMORY)],
        ),
        case("CatalystVM", "spec.memory", json!(549_755_813_889u64), &[("spec.memory", &VM_MEMORY_WHOLE_PAGES)]),
    ]
}

fn expected(case: &Case) -> BTreeSet<(String, String)> {
    case.broken.iter().map(|(field, rule)| (field.to_string(), rule.message.to_string())).collect()
}

#[test]
fn valid_objects_keep_every_rule_in_cel_and_in_rust() {
    for kind in ["CatalystHost", "CatalystVM", "ServiceGroup"] {
        assert_eq!(cel_failures(kind, &valid(kind)), BTreeSet::new(), "{kind} (CEL)");
        assert_eq!(rust_failures(kind, &valid(kind)), BTreeSet::new(), "{kind} (Rust)");
    }
}

#[test]
fn each_broken_rule_is_reported_alike_by_cel_and_rust() {
    for case in cases() {
        let object = with(valid(case.kind), case.path, case.value.clone());
        let label = format!("{} with {} = {}", case.kind, case.path, case.value);
        assert_eq!(cel_failures(case.kind, &object), expected(&case), "CEL on {label}");
        assert_eq!(rust_failures(case.kind, &object), expected(&case), "Rust on {label}");
    }
}

/// Whole cores and replicas are plain OpenAPI bounds (`minimum`), checked by the schema with
/// the types, not by CEL.
#[test]
fn whole_cores_and_replicas_are_bounded_by_the_schema() {
    for (kind, path, value, field, bound) in [
        ("CatalystHost", "spec.capacity.cpu", json!(0), "spec.capacity.cpu", "greater than or equal to 1"),
        ("CatalystHost", "spec.numa.1.cpu", json!(0), "spec.numa[1].cpu", "greater than or equal to 1"),
        ("CatalystVM", "spec.cpu", json!(0), "spec.cpu", "greater than or equal to 1"),
        ("CatalystVM", "spec.node.reservedCpu", json!(0), "spec.node.reservedCpu", "greater than or equal to 1"),
        ("ServiceGroup", "spec.replicas", json!(-1), "spec.replicas", "greater than or equal to 0"),
        ("ServiceGroup", "spec.cpu", json!(0), "spec.cpu", "greater than or equal to 1"),
    ] {
        let object = with(valid(kind), path, value.clone());
        assert_eq!(schema_failures(kind, &object), [format!("{field} = {value}: should be {bound}")], "{kind} {path}");
        assert!(Validator::new().validate(&schema_of(kind), &valid(kind), None).is_ok());
    }
}

fn schema_failures(kind: &str, object: &Value) -> Vec<String> {
    let schema = schema_of(kind);
    catalyst_core::schema::validate(&schema, &schema, object, "")
        .iter()
        .filter(|v| !matches!(v, catalyst_core::schema::SchemaViolation::Unknown { .. }))
        .map(ToString::to_string)
        .collect()
}

/// Quantities are int-or-string, as Kubernetes' own are: `memory: 0` is 0 bytes. The schema
/// holds strings to the quantity format (a pattern) and integers to a `minimum`, at no CEL cost.
#[test]
fn quantities_are_integers_or_strings_checked_by_the_schema() {
    let positive = format!("should match '{}'", rules::POSITIVE_QUANTITY_PATTERN);
    let non_negative = format!("should match '{}'", rules::QUANTITY_PATTERN);
    for (kind, path, value, field, problem) in [
        ("CatalystHost", "spec.capacity.memory", json!("lots"), "spec.capacity.memory", &positive),
        ("CatalystHost", "spec.capacity.storage", json!("-1T"), "spec.capacity.storage", &positive),
        ("CatalystHost", "spec.reserved.memory", json!("-4Gi"), "spec.reserved.memory", &non_negative),
        ("CatalystHost", "spec.numa.1.memory", json!("1KB"), "spec.numa[1].memory", &positive),
        ("CatalystVM", "spec.bootDisk.dataVolume.size", json!("0"), "spec.bootDisk.dataVolume.size", &positive),
        ("CatalystVM", "spec.memory", json!("512 Gi"), "spec.memory", &positive),
        ("ServiceGroup", "spec.memory", json!("42 GB"), "spec.memory", &positive),
        ("ServiceGroup", "spec.template.storage.0.size", json!("0Mi"), "spec.template.storage[0].size", &positive),
    ] {
        let object = with(valid(kind), path, value.clone());
        assert_eq!(schema_failures(kind, &object), [format!("{field} = {value}: {problem}")], "{kind} {path}");
        assert!(rust_failures(kind, &object).is_empty(), "{kind} {path}: no CEL rule of Rust's is broken");
    }
    for (kind, path, value, field, bound) in [
        ("CatalystVM", "spec.node.reservedMemory", json!(-1), "spec.node.reservedMemory", "greater than or equal to 0"),
        ("ServiceGroup", "spec.memory", json!(0), "spec.memory", "greater than or equal to 1"),
    ] {
        let object = with(valid(kind), path, value.clone());
        assert_eq!(schema_failures(kind, &object), [format!("{field} = {value}: should be {bound}")], "{kind} {path}");
    }
}

#[test]
fn integer_quantities_and_every_string_form_validate_everywhere() {
    for (kind, path, value) in [
        ("CatalystHost", "spec.reserved.memory", json!(0)),
        ("CatalystHost", "spec.capacity.memory", json!(2_199_023_255_552u64)),
        ("CatalystHost", "spec.numa.0.memory", json!(1_099_511_627_776u64)),
        ("CatalystVM", "spec.node.reservedMemory", json!(0)),
        ("CatalystVM", "spec.memory", json!(549_755_813_888u64)),
        ("CatalystVM", "spec.memory", json!("0.5Ti")),
        ("CatalystVM", "spec.memory", json!("+512Gi")),
        ("CatalystVM", "spec.bootDisk.dataVolume.size", json!("1e11")),
        ("ServiceGroup", "spec.memory", json!(45_097_156_608u64)),
    ] {
        let object = with(valid(kind), path, value.clone());
        let label = format!("{kind} with {path} = {value}");
        assert_eq!(schema_failures(kind, &object), Vec::<String>::new(), "schema on {label}");
        assert_eq!(cel_failures(kind, &object), BTreeSet::new(), "CEL on {label}");
        assert_eq!(rust_failures(kind, &object), BTreeSet::new(), "Rust on {label}");
    }
}

#[test]
fn every_rule_is_in_a_crd_and_broken_by_some_case() {
    let crds: String = ["CatalystHost", "CatalystVM", "ServiceGroup"].map(|k| schema_of(k).to_string()).concat();
    let mut broken: BTreeSet<&str> = cases().iter().flat_map(|c| c.broken.iter().map(|(_, rule)| rule.cel)).collect();
    if VM_HOST_CHANGES.iter().any(|(_, _, _, refused)| *refused) {
        broken.insert(rules::VM_PLACED_HOST_IS_FIXED.cel);
    }
    for rule in rules::ALL {
        assert!(crds.contains(&serde_json::to_string(rule.cel).unwrap()), "rule {:?} is in no CRD", rule.cel);
        assert!(broken.contains(rule.cel), "rule {:?} is never broken by a test case", rule.cel);
    }
}

#[test]
fn every_rule_compiles_in_scope_and_within_the_cost_budget() {
    for kind in ["CatalystHost", "CatalystVM", "ServiceGroup"] {
        let compiled = compile_schema(&schema_of(kind));
        assert!(!compiled.has_errors(), "{kind}: {:?}", compiled.compilation_errors());
        for rule in rules::ALL {
            let warnings = analyze_rule(rule.cel, &compiled, ScopeContext::CrdValidation);
            let fatal: Vec<_> = warnings
                .iter()
                .filter(|w| w.kind != WarningKind::MissingBounds && !names_a_comprehension_variable(w, rule.cel))
                .collect();
            assert!(fatal.is_empty(), "{kind}: {fatal:?}");
        }
    }
}

/// kube-cel's scope analysis (0.8) counts the variable a macro binds, the `c` of
/// `self.numa.map(c, c.cpu)`, as out of scope; the API server does not.
fn names_a_comprehension_variable(warning: &kube::core::cel::AnalysisWarning, rule: &str) -> bool {
    warning.kind == WarningKind::WrongScope
        && ["map", "all", "exists", "exists_one", "filter"].iter().any(|m| {
            rule.split(&format!(".{m}(")).skip(1).any(|rest| {
                let bound = rest.split(',').next().unwrap_or("").trim();
                warning.message.starts_with(&format!("variable '{bound}' "))
            })
        })
}

/// A rule placed at the root of the schema sees the whole object: `self.cpu` there is an error
/// the API server reports at install time. Evaluating every rule against a valid object catches
/// that (the field is absent where the rule looks); this checks the check.
#[test]
fn a_rule_placed_at_the_wrong_node_fails_to_evaluate() {
    let mut schema = schema_of("CatalystVM");
    schema["x-kubernetes-validations"] = json!([{"rule": "self.cpu >= 1", "message": "misplaced"}]);
    let errors = Validator::new().validate(&schema, &valid("CatalystVM"), None).unwrap_err();
    assert!(errors.iter().any(|e| e.kind != ErrorKind::ValidationFailure), "{errors:?}");
}

/// A hugepage size is one of the schema's two values, refused by the schema with the types.
#[test]
fn hugepage_sizes_are_an_enum_of_the_schema() {
    let schema = schema_of("CatalystVM");
    let object = with(valid("CatalystVM"), "spec.hugepages", json!("4Mi"));
    let found: Vec<String> = catalyst_core::schema::validate(&schema, &schema, &object, "")
        .iter()
        .filter(|v| !matches!(v, catalyst_core::schema::SchemaViolation::Unknown { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, ["spec.hugepages: not one of the allowed values"]);
}
