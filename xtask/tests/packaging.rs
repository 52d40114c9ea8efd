//! The chart and the kustomize bases, checked with the real helm and kubectl: they lint, they
//! render with default and non-default values into the expected objects, bad values fail at
//! install, and what they carry equals what the code generates.

use catalyst_e2e as tools;

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
    text.split("\n---").map(|d| catalyst_core::yaml::from_str::<Value>(d).unwrap()).filter(|d| !d.is_null()).collect()
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
    let lease_role = named(&rendered, "Role", "catalyst-catalyst-operator-leader-election");
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
    let policy = named(&rendered, "ValidatingAdmissionPolicy", "catalyst-catalyst-operator-agent-own-node");
    let the_agent = policy["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(the_agent.ends_with(":catalyst-system:catalyst-catalyst-operator-agent\""), "{the_agent}");

    // The operator mints each VM's token (the default): its Roles in kube-system and
    // kube-public and its approval of kubelet certificates are the generated rules.
    assert!(args.contains(&"--mint-join-tokens=true"), "{args:?}");
    for (kind, name, namespace, grants) in [
        ("Role", "catalyst-catalyst-operator-join-tokens", Some("kube-system"), rbac::JOIN_TOKENS),
        ("Role", "catalyst-catalyst-operator-cluster-info", Some("kube-public"), rbac::CLUSTER_INFO),
        ("ClusterRole", "catalyst-catalyst-operator-node-certificates", None, rbac::NODE_CERTIFICATES),
    ] {
        let role = named(&rendered, kind, name);
        assert_eq!(role["metadata"]["namespace"].as_str(), namespace, "{name}");
        assert_eq!(role["rules"], serde_json::to_value(rbac::policy_rules(grants)).unwrap(), "{name}");
    }
    // A VM's token may join as kubeadm's own may, but nothing binds it to the auto-approval of
    // node client certificates: the operator approves them.
    let group = catalyst_core::kubelet_csr::NODE_BOOTSTRAP_GROUP;
    let bound: BTreeSet<&str> = rendered
        .iter()
        .filter(|d| d["subjects"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == group)))
        .map(|d| d["roleRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        bound,
        [
            "kube-proxy",
            "kubeadm:get-nodes",
            "kubeadm:kubelet-config",
            "kubeadm:nodes-kubeadm-config",
            "system:node-bootstrapper"
        ]
        .into()
    );
    let tokens = named(&rendered, "ValidatingAdmissionPolicy", "catalyst-catalyst-operator-join-tokens");
    let the_operator = tokens["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(the_operator.ends_with(":catalyst-system:catalyst-catalyst-operator\""), "{the_operator}");
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
    let expected =
        ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "Deployment", "Service", "ServiceAccount", "ServiceMonitor"];
    assert_eq!(
        kinds(&rendered),
        expected.iter().map(|k| k.to_string()).collect(),
        "no CRDs, no PDB, no lease Role, no own-node policy; the agent's account only; no minted tokens, so nothing in kube-system"
    );
    let container = &of_kind(&rendered, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--namespace=telecom,billing") && args.contains(&"--leader-elect=false"), "{args:?}");
    assert!(args.contains(&"--host-selector=catalyst.io/pool in (telecom,billing)"), "{args:?}");
    for kubevirt in [
        "--kubevirt-version=v1.8",
        "--additional-guest-memory-overhead-ratio=1.5",
        "--disable-serial-console-log",
        "--align-cpus",
        "--image-volume=true",
        "--mint-join-tokens=false",
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

/// A Secret as a ValidatingAdmissionPolicy sees it: JSON, but `data` values are bytes.
fn admitted_secret(json: Value) -> cel::Value {
    let data = json.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut fields = json;
    fields.as_object_mut().unwrap().remove("data");
    let cel::Value::Map(map) = cel::to_value(&fields).unwrap() else { panic!("an object") };
    let mut entries = (*map.map).clone();
    if !data.is_empty() {
        let bytes: std::collections::HashMap<cel::objects::Key, cel::Value> = data
            .iter()
            .map(|(k, v)| (k.clone().into(), cel::Value::Bytes(v.as_str().unwrap().as_bytes().to_vec().into())))
            .collect();
        entries.insert("data".to_string().into(), cel::Value::Map(cel::objects::Map { map: bytes.into() }));
    }
    cel::Value::Map(cel::objects::Map { map: entries.into() })
}

/// Whether the policy admits `operation` on `object` (or the deletion of `old`) by `user`: its
/// match conditions, then its variables and validations, as the API server evaluates them.
fn policy_admits(
    policy: &Value,
    user: &str,
    operation: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Result<(), String> {
    let mut context = cel::Context::default();
    let value = |v: Option<Value>| v.map(admitted_secret).unwrap_or(cel::Value::Null);
    context.add_variable_from_value("object", value(object));
    context.add_variable_from_value("oldObject", value(old));
    context.add_variable_from_value(
        "request",
        cel::to_value(serde_json::json!({"operation": operation, "userInfo": {"username": user}})).unwrap(),
    );
    let evaluate = |context: &cel::Context, expression: &str| {
        cel::Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}")).execute(context)
    };
    for condition in policy["spec"]["matchConditions"].as_array().unwrap() {
        if evaluate(&context, condition["expression"].as_str().unwrap()) != Ok(cel::Value::Bool(true)) {
            return Ok(());
        }
    }
    let mut variables = std::collections::HashMap::<cel::objects::Key, cel::Value>::new();
    for variable in policy["spec"]["variables"].as_array().into_iter().flatten() {
        let computed = evaluate(&context, variable["expression"].as_str().unwrap()).unwrap();
        variables.insert(variable["name"].as_str().unwrap().to_string().into(), computed);
    }
    context.add_variable_from_value("variables", cel::Value::Map(cel::objects::Map { map: variables.into() }));
    for validation in policy["spec"]["validations"].as_array().unwrap() {
        match evaluate(&context, validation["expression"].as_str().unwrap()) {
            Ok(cel::Value::Bool(true)) => {}
            // An error denies the request too (failurePolicy: Fail).
            _ => return Err(validation["message"].as_str().unwrap().to_string()),
        }
    }
    Ok(())
}

/// The operator may write Secrets in kube-system, which RBAC cannot narrow; the chart's policy
/// does: the operator writes only bootstrap tokens it labelled, of Catalyst's group alone.
#[test]
fn the_token_policy_lets_the_operator_write_only_the_tokens_it_mints() {
    let rendered = documents(&run("helm", &["template", "catalyst", CHART, "--namespace", "catalyst-system"]));
    let policy = named(&rendered, "ValidatingAdmissionPolicy", "catalyst-catalyst-operator-join-tokens");
    let operator = "system:serviceaccount:catalyst-system:catalyst-catalyst-operator";
    let token = |groups: &str| {
        serde_json::json!({
            "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system",
                         "labels": {"app.kubernetes.io/managed-by": "catalyst", "catalyst.io/join-token-of": "api-a.team"}},
            "data": {"token-id": "abcdef", "auth-extra-groups": groups}
        })
    };
    let minted = token(catalyst_core::kubelet_csr::NODE_BOOTSTRAP_GROUP);
    assert_eq!(policy_admits(policy, operator, "CREATE", Some(minted.clone()), None), Ok(()));
    assert_eq!(policy_admits(policy, operator, "UPDATE", Some(minted.clone()), Some(minted.clone())), Ok(()));
    assert_eq!(policy_admits(policy, operator, "DELETE", None, Some(minted.clone())), Ok(()));
    // A token of kubeadm's group, whose client certificates are approved for any node name.
    let kubeadm = token("system:bootstrappers:kubeadm:default-node-token");
    assert!(
        policy_admits(policy, operator, "CREATE", Some(kubeadm), None).unwrap_err().contains("Catalyst's group alone")
    );
    // Another Secret of kube-system, to write or to delete.
    let other = serde_json::json!({"type": "Opaque", "metadata": {"name": "etcd-backup", "namespace": "kube-system"},
                                   "data": {"key": "x"}});
    assert!(policy_admits(policy, operator, "CREATE", Some(other.clone()), None).is_err());
    assert!(policy_admits(policy, operator, "DELETE", None, Some(other.clone())).is_err());
    let mut relabelled = minted.clone();
    relabelled["metadata"]["name"] = "bootstrap-token-kubeadm".into();
    let mut theirs = relabelled.clone();
    theirs["metadata"].as_object_mut().unwrap().remove("labels");
    let refused = policy_admits(policy, operator, "UPDATE", Some(relabelled), Some(theirs));
    assert_eq!(refused, Err("the operator changes no Secret it did not mint".into()));
    // Anyone else is not this policy's business.
    assert_eq!(policy_admits(policy, "system:admin", "CREATE", Some(other), None), Ok(()));
}
