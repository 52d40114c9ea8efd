//! Whether the Node that claims to be a CatalystVM is that VM. A kubelet sets its own labels,
//! so anyone holding a join token can register a Node labelled `catalyst.io/vm=<vm>` and draw
//! the VM's replicas. So ServiceGroups select on a label under `node-restriction.kubernetes.io/`
//! instead, which the NodeRestriction admission plugin forbids kubelets to set
//! (`plugin/pkg/admission/noderestriction/admission.go`; the node-isolation guidance of
//! kubernetes.io "Assigning Pods to Nodes"), and the operator sets it only once the Node matches
//! the VM's VirtualMachineInstance: the instance runs on the VM's host, and one of the Node's
//! InternalIPs is an address KubeVirt reports for the instance.

use catalyst_api::kubevirt::VirtualMachineInstance;
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeSet;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The Node is the VM: `address` is theirs both.
    Verified { address: String },
    /// KubeVirt has no VirtualMachineInstance for the VM (yet).
    NoInstance,
    /// The instance runs on another node than the VM's host, or on none yet.
    ElsewhereThanHost { runs_on: Option<String> },
    /// The instance has no address yet.
    NoInstanceAddress,
    /// No InternalIP of the Node is an address of the instance: not this VM.
    AddressMismatch { node: Vec<String>, instance: Vec<String> },
}

impl Identity {
    pub fn is_verified(&self) -> bool {
        matches!(self, Identity::Verified { .. })
    }

    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Identity::Verified { .. } => "Verified",
            Identity::NoInstance => "NoInstance",
            Identity::ElsewhereThanHost { .. } => "InstanceElsewhere",
            Identity::NoInstanceAddress => "NoInstanceAddress",
            Identity::AddressMismatch { .. } => "AddressMismatch",
        }
    }

    /// The condition message, naming the node and the host.
    pub fn message(&self, node: &str, host_node: &str) -> String {
        match self {
            Identity::Verified { address } => {
                format!("node {node} is this VM: its InternalIP {address} is the VirtualMachineInstance's address")
            }
            Identity::NoInstance => format!("node {node} claims this VM, which has no VirtualMachineInstance yet"),
            Identity::ElsewhereThanHost { runs_on } => format!(
                "node {node} claims this VM, whose VirtualMachineInstance runs on {} rather than its host's node {host_node}",
                runs_on.as_deref().unwrap_or("no node")
            ),
            Identity::NoInstanceAddress => {
                format!("node {node} claims this VM, whose VirtualMachineInstance has no address yet")
            }
            Identity::AddressMismatch { node: addresses, instance } => format!(
                "node {node} claims this VM, but its InternalIPs ({}) are none of the VirtualMachineInstance's ({}): \
                 its replicas are not scheduled there",
                addresses.join(", "),
                instance.join(", ")
            ),
        }
    }
}

/// Whether `node` already carries the verified label for the VM whose node is `vm_node`
/// (`name.namespace`): the operator set it once the node matched, and it stays with that Node.
pub fn is_labelled_as(node: &Node, vm_node: &str) -> bool {
    use kube::ResourceExt;
    node.labels().get(crate::render::labels::VERIFIED_VM).is_some_and(|value| value == vm_node)
}

/// Checks `node` against the VM's `instance`, which must run on `host_node`.
pub fn verify(node: &Node, instance: Option<&VirtualMachineInstance>, host_node: &str) -> Identity {
    let Some(instance) = instance else { return Identity::NoInstance };
    let status = instance.status.clone().unwrap_or_default();
    if status.node_name.as_deref() != Some(host_node) {
        return Identity::ElsewhereThanHost { runs_on: status.node_name };
    }
    let instance_addresses: BTreeSet<String> = status
        .interfaces
        .iter()
        .flat_map(|i| i.ip_address.iter().chain(&i.ip_addresses))
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if instance_addresses.is_empty() {
        return Identity::NoInstanceAddress;
    }
    let node_addresses: Vec<String> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .collect();
    match node_addresses.iter().find(|a| instance_addresses.contains(*a)) {
        Some(address) => Identity::Verified { address: address.clone() },
        None => Identity::AddressMismatch { node: node_addresses, instance: instance_addresses.into_iter().collect() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(addresses: &[&str]) -> Node {
        let mut all = vec![json!({"type": "Hostname", "address": "api-a.team"})];
        all.extend(addresses.iter().map(|a| json!({"type": "InternalIP", "address": a})));
        serde_json::from_value(json!({"metadata": {"name": "api-a.team"}, "status": {"addresses": all}})).unwrap()
    }

    fn instance(node_name: &str, address: &str) -> VirtualMachineInstance {
        serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "api-a", "namespace": "team"},
            "spec": {},
            "status": {"phase": "Running", "nodeName": node_name,
                       "interfaces": [{"name": "default", "ipAddress": address, "ipAddresses": [address]}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_node_is_the_vm_when_its_internal_ip_is_the_instances_address_on_the_vms_host() {
        let verdict = verify(&node(&["10.244.3.17"]), Some(&instance("hv-1", "10.244.3.17")), "hv-1");
        assert_eq!(verdict, Identity::Verified { address: "10.244.3.17".into() });
    }

    #[test]
    fn a_node_claiming_the_vm_from_another_address_is_not_it() {
        let verdict = verify(&node(&["192.168.9.9"]), Some(&instance("hv-1", "10.244.3.17")), "hv-1");
        assert_eq!(verdict.reason(), "AddressMismatch");
        assert!(verdict.message("api-a.team", "hv-1").contains("(192.168.9.9) are none of"), "{verdict:?}");
        // Masquerade's shared 10.0.2.2 would be every guest's: the instance reports the pod's.
        let elsewhere = verify(&node(&["10.244.3.17"]), Some(&instance("hv-2", "10.244.3.17")), "hv-1");
        assert_eq!(elsewhere, Identity::ElsewhereThanHost { runs_on: Some("hv-2".into()) });
        assert_eq!(verify(&node(&["10.244.3.17"]), None, "hv-1"), Identity::NoInstance);
        assert_eq!(verify(&node(&["10.244.3.17"]), Some(&instance("hv-1", "")), "hv-1"), Identity::NoInstanceAddress);
    }
}
