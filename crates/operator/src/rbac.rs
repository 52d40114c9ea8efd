//! The operator's RBAC, written once next to the code that needs it: every API call the
//! reconcilers, their watches, the event recorder and the leader election make, and nothing
//! else. The chart and the kustomize bases are generated from these rules, and a test checks
//! that the calls the reconcilers make are exactly what is granted.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// One grant: API group, resource (with subresource), verbs, the objects it is limited to (all
/// when empty), and why.
pub struct Grant {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub names: &'static [&'static str],
    pub why: &'static str,
}

/// Cluster-wide grants (a ClusterRole): CatalystHosts and Nodes are cluster-scoped, and the
/// other kinds are watched in every namespace unless the operator is limited to one.
pub const CLUSTER: &[Grant] = &[
    Grant {
        group: "catalyst.io",
        resource: "catalysthosts",
        verbs: &["get", "list", "watch"],
        names: &[],
        why: "read hosts; re-read one before a placement",
    },
    Grant {
        group: "catalyst.io",
        resource: "catalysthosts/status",
        verbs: &["update"],
        names: &[],
        why: "the ledger and figures, written with a compare-and-swap",
    },
    Grant {
        group: "catalyst.io",
        resource: "catalystvms",
        verbs: &["get", "list", "watch", "patch"],
        names: &[],
        why: "read VMs (one missing from the cache); add and remove the finalizer",
    },
    Grant {
        group: "catalyst.io",
        resource: "catalystvms/status",
        verbs: &["patch"],
        names: &[],
        why: "report placement, phase and conditions",
    },
    Grant {
        group: "catalyst.io",
        resource: "servicegroups",
        verbs: &["list", "watch"],
        names: &[],
        why: "read groups",
    },
    Grant {
        group: "catalyst.io",
        resource: "catalystnodereports",
        verbs: &["list", "watch"],
        names: &[],
        why: "read the CPUs the kubelets report, for the Pinned condition",
    },
    Grant {
        group: "catalyst.io",
        resource: "servicegroups/status",
        verbs: &["patch"],
        names: &[],
        why: "report fit, replicas and conditions",
    },
    Grant {
        group: "kubevirt.io",
        resource: "virtualmachines",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        names: &[],
        why: "server-side apply (create is authorized for a new object), follow, delete on cleanup",
    },
    Grant {
        group: "",
        resource: "secrets",
        verbs: &["get", "list", "watch", "create", "patch"],
        names: &[],
        why: "read the join Secret; apply the cloud-init Secret; watch its own by metadata (its label)",
    },
    Grant {
        group: "",
        resource: "services",
        verbs: &["get", "list", "watch", "create", "patch"],
        names: &[],
        why: "apply each group's headless Service; watch its own by metadata, to repair one deleted by hand",
    },
    Grant {
        group: "apps",
        resource: "statefulsets",
        verbs: &["get", "list", "watch", "create", "patch"],
        names: &[],
        why: "apply and follow each group's StatefulSet",
    },
    Grant {
        group: "",
        resource: "nodes",
        verbs: &["list", "watch", "patch"],
        names: &[],
        why: "hosts' and VMs' node readiness; label a VM's node once it is verified (one label, server-side apply)",
    },
    Grant {
        group: "",
        resource: "pods/eviction",
        verbs: &["create"],
        names: &[],
        why: "recreate a replica its kubelet gave the wrong cores (the eviction API, so disruption budgets hold)",
    },
    Grant {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        names: &[],
        why: "KubeVirt's launcher pods, by metadata: which pod in a host's report is which VM's",
    },
    Grant {
        group: "kubevirt.io",
        resource: "virtualmachineinstances",
        verbs: &["get", "delete"],
        names: &[],
        why: "match a node that claims a VM to the VM's instance (its host and addresses); follow a move, and restart a VM on its new host",
    },
    Grant {
        group: "kubevirt.io",
        resource: "virtualmachineinstancemigrations",
        verbs: &["get", "create", "delete"],
        names: &[],
        why: "live-migrate a VM off a drained host",
    },
    Grant {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        names: &[],
        why: "events on the three kinds (patch aggregates repeats)",
    },
];

/// Grants in the operator's own namespace (a Role): the leader-election Lease.
pub const LEADER_ELECTION: &[Grant] = &[Grant {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["get", "create", "update"],
    names: &[],
    why: "acquire, renew and release the leader Lease",
}];

/// Grants in `kube-system` (a Role), where the operator mints tokens: each VM's bootstrap token.
/// The chart's ValidatingAdmissionPolicy narrows the writes to bootstrap tokens of Catalyst's
/// group that the operator labelled.
pub const JOIN_TOKENS: &[Grant] = &[Grant {
    group: "",
    resource: "secrets",
    verbs: &["list", "watch", "create", "patch", "delete"],
    names: &[],
    why: "mint each VM's bootstrap token (server-side apply), extend it while the VM joins, delete it once it has; watch them by metadata",
}];

/// Grants in `kube-public` (a Role), where the operator mints tokens: whether kube-controller-
/// manager's bootstrapsigner signed `cluster-info` for a token.
pub const CLUSTER_INFO: &[Grant] = &[Grant {
    group: "",
    resource: "configmaps",
    verbs: &["get"],
    names: &["cluster-info"],
    why: "find the signature kubeadm join's discovery waits for, to say when none comes",
}];

/// Cluster-wide grants where the operator mints tokens: it approves the kubelet client
/// certificate of each VM-node, and only that, in place of kube-controller-manager's
/// auto-approval, which would approve a certificate for any node name.
pub const NODE_CERTIFICATES: &[Grant] = &[
    Grant {
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests",
        verbs: &["list", "watch"],
        names: &[],
        why: "watch kubelet client certificate requests",
    },
    Grant {
        group: "certificates.k8s.io",
        resource: "certificatesigningrequests/approval",
        verbs: &["update"],
        names: &[],
        why: "approve a VM-node's request made with its own token; deny any other from Catalyst's group",
    },
    Grant {
        group: "certificates.k8s.io",
        resource: "signers",
        verbs: &["approve"],
        names: &["kubernetes.io/kube-apiserver-client-kubelet"],
        why: "approval is authorized per signer",
    },
];

/// The node agent's grants (a ClusterRole; its report is cluster-scoped): it writes its own
/// node's CatalystNodeReport and reads nothing from the API server. Which report it may write
/// is narrowed to its own node's by a ValidatingAdmissionPolicy (the chart's
/// `agent-policy.yaml`), since RBAC cannot name a resource by the caller's node.
pub const AGENT: &[Grant] = &[Grant {
    group: "catalyst.io",
    resource: "catalystnodereports",
    verbs: &["create", "patch"],
    names: &[],
    why: "server-side apply of its node's report (create is authorized for a new object)",
}];

pub fn policy_rules(grants: &[Grant]) -> Vec<PolicyRule> {
    grants
        .iter()
        .map(|g| PolicyRule {
            api_groups: Some(vec![g.group.to_string()]),
            resources: Some(vec![g.resource.to_string()]),
            verbs: g.verbs.iter().map(|v| v.to_string()).collect(),
            resource_names: (!g.names.is_empty()).then(|| g.names.iter().map(|n| n.to_string()).collect()),
            ..PolicyRule::default()
        })
        .collect()
}

/// The rules as the YAML list the chart and kustomize bases embed.
pub fn rules_yaml(grants: &[Grant]) -> String {
    let mut text = String::new();
    for grant in grants {
        text.push_str(&format!("# {}\n", grant.why));
        let rule =
            catalyst_core::yaml::to_string(&vec![&policy_rules(std::slice::from_ref(grant))[0]]).expect("serializable");
        text.push_str(&rule);
    }
    text
}
