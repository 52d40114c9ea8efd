//! The chart and the kustomize bases, checked with the real helm and kubectl: they lint, they
//! render with default and non-default values into the expected objects, bad values fail at
//! install, and what they carry equals what the code generates.

#[path = "../../e2e/suite/tools.rs"]
mod tools;

use catalyst_core::crd;
use catalyst_operator::rbac;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|dir| dir.join("Cargo.lock").exists()).unwrap().to_path_buf()
}

fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tools::tool(tool)).args(args).current_dir(repo()).output().unwrap()
}

fn documents(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    text.split("\n---").map(|d| serde_norway::from_str::<Value>(d).unwrap()).filter(|d| !d.is_null()).collect()
}

/// Numbers as floats, so `minimum: 0.0` (as the CRD is written) equals `minimum: 0` (as Helm re-writes it).
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        other => other.clone(),
    }
}

fn kinds(documents: &[Value]) -> BTreeSet<String> {
    documents.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

const CHART: &str = "charts/catalyst-operator";

#[test]
fn the_chart_lints_with_default_and_non_default_values() {
    for extra in [&[][..], &["-f", "charts/catalyst-operator/ci/non-default-values.yaml"][..]] {
        let mut args = vec!["lint", CHART, "--strict"];
        args.extend_from_slice(extra);
        let output = run("helm", &args);
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_default_render_installs_everything_with_the_generated_crds_and_rbac() {
    let rendered = documents(&run("helm", &["template", "catalyst", CHART, "--namespace", "catalyst-system"]));
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "DaemonSet",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    assert_eq!(kinds(&rendered), expected.iter().map(|k| k.to_string()).collect());

    // The CRDs are crds/ exactly, plus the annotation that keeps them on uninstall.
    let crds = of_kind(&rendered, "CustomResourceDefinition");
    assert_eq!(crds.len(), crd::all().len());
    for (_, definition) in crd::all() {
        let generated = serde_json::to_value(&definition).unwrap();
        let name = generated["metadata"]["name"].clone();
        let mut chart = crds.iter().find(|c| c["metadata"]["name"] == name).cloned().cloned().unwrap();
        assert_eq!(chart["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
        chart["metadata"].as_object_mut().unwrap().remove("annotations");
        assert!(numbers_as_floats(&chart) == numbers_as_floats(&generated), "the chart's {name} differs from crds/");
    }

    // The RBAC is the rules of crates/operator/src/rbac.rs, and nothing else.
    let role = named(&rendered, "ClusterRole", "catalyst-catalyst-operator");
    assert_eq!(role["rules"], serde_json::to_value(rbac::policy_rules(rbac::CLUSTER)).unwrap());
    let agent_role = named(&rendered, "ClusterRole", "catalyst-catalyst-operator-agent");
    assert_eq!(agent_role["rules"], serde_json::to_value(rbac::policy_rules(rbac::AGENT)).unwrap());
    let lease_role = &of_kind(&rendered, "Role")[0];
    assert_eq!(lease_role["rules"], serde_json::to_value(rbac::policy_rules(rbac::LEADER_ELECTION)).unwrap());
    assert_eq!(lease_role["metadata"]["namespace"], "catalyst-system");

    let deployment = &of_kind(&rendered, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(
        container["resources"]["limits"]["memory"].is_string() && container["resources"]["requests"]["cpu"].is_string()
    );
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(
        args.contains(&"--leader-elect=true") && args.contains(&"--lease-name=catalyst-catalyst-operator"),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a.starts_with("--namespace") || a.starts_with("--host-selector")));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");

    // The agent: the kubelet's pod-resources directory, read-only; every node; no capability;
    // its own node's report only.
    let agent = &of_kind(&rendered, "DaemonSet")[0]["spec"]["template"]["spec"];
    assert_eq!(agent["volumes"][0]["hostPath"]["path"], "/var/lib/kubelet/pod-resources");
    let container = &agent["containers"][0];
    assert_eq!(container["volumeMounts"][0]["readOnly"], true);
    assert_eq!(container["command"][0], "/usr/local/bin/catalyst-agent");
    assert_eq!(container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(agent["tolerations"][0]["operator"], "Exists");
    assert_ne!(agent["serviceAccountName"], pod["serviceAccountName"], "the agent has an account of its own");
    let policy = &of_kind(&rendered, "ValidatingAdmissionPolicy")[0];
    let the_agent = policy["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(the_agent.ends_with(":catalyst-system:catalyst-catalyst-operator-agent\""), "{the_agent}");
}

/// The document of this kind and name.
fn named<'a>(rendered: &'a [Value], kind: &str, name: &str) -> &'a Value {
    rendered
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn non_default_values_render_two_namespaces_a_host_pool_one_replica_and_a_service_monitor() {
    let rendered = documents(&run(
        "helm",
        &["template", "catalyst", CHART, "-f", "charts/catalyst-operator/ci/non-default-values.yaml"],
    ));
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    assert_eq!(
        kinds(&rendered),
        expected.iter().map(|k| k.to_string()).collect(),
        "no CRDs, no PDB, no lease Role, no own-node policy; the agent's account only; the join-token Role"
    );
    let tokens_role = named(&rendered, "Role", "catalyst-catalyst-operator-join-tokens");
    assert_eq!(tokens_role["metadata"]["namespace"], "kube-system");
    assert_eq!(tokens_role["rules"], serde_json::to_value(rbac::policy_rules(rbac::JOIN_TOKENS)).unwrap());
    let container = &of_kind(&rendered, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--namespace=telecom,billing") && args.contains(&"--leader-elect=false"), "{args:?}");
    assert!(args.contains(&"--host-selector=catalyst.io/pool in (telecom,billing)"), "{args:?}");
    for kubevirt in [
        "--kubevirt-version=v1.8",
        "--additional-guest-memory-overhead-ratio=1.5",
        "--disable-serial-console-log",
        "--align-cpus",
        "--mint-join-tokens",
    ] {
        assert!(args.contains(&kubevirt), "{kubevirt} missing in {args:?}");
    }
    assert_eq!(container["image"], "registry.example.com/platform/catalyst-operator:0.1.0-rc.1");
    assert_eq!(of_kind(&rendered, "ServiceMonitor")[0]["metadata"]["labels"]["release"], "prometheus");
}

#[test]
fn bad_values_fail_at_install() {
    for bad in ["replicaCount=0", "logFormat=xml", "image.pullPolicy=Sometimes", "metrics.port=70000", "unknownKey=1"] {
        let output = run("helm", &["template", "catalyst", CHART, "--set", bad]);
        assert!(!output.status.success(), "{bad} was accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("values don't meet the specifications of the schema"),
            "{bad}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_kustomize_bases_render_the_operator_in_its_namespace() {
    let rendered = documents(&run("kubectl", &["kustomize", "config/default"]));
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "DaemonSet",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    assert_eq!(kinds(&rendered), expected.iter().map(|k| k.to_string()).collect());
    let cluster_scoped = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Namespace",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    for namespaced in rendered.iter().filter(|d| !cluster_scoped.contains(&d["kind"].as_str().unwrap())) {
        assert_eq!(namespaced["metadata"]["namespace"], "catalyst-system", "{}", namespaced["kind"]);
    }
    let role = named(&rendered, "ClusterRole", "catalyst-manager-role");
    assert_eq!(role["rules"], serde_json::to_value(rbac::policy_rules(rbac::CLUSTER)).unwrap());
    let agent_role = named(&rendered, "ClusterRole", "catalyst-agent-role");
    assert_eq!(agent_role["rules"], serde_json::to_value(rbac::policy_rules(rbac::AGENT)).unwrap());
    // The policy names the agent's account as config/default prefixes and places it.
    let policy = &of_kind(&rendered, "ValidatingAdmissionPolicy")[0];
    let the_agent = policy["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
    let account = named(&rendered, "ServiceAccount", "catalyst-agent");
    assert!(the_agent.ends_with(&format!(":{}:catalyst-agent\"", account["metadata"]["namespace"].as_str().unwrap())));
    let binding = &of_kind(&rendered, "ValidatingAdmissionPolicyBinding")[0];
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    let samples = documents(&run("kubectl", &["kustomize", "config/samples"]));
    assert_eq!(of_kind(&samples, "CatalystVM").len(), 2);
}
