//! The VM's node verified before its replicas may land there: the I/O around
//! [`catalyst_core::node_identity`]. The node that carries the VM's `catalyst.io/vm` label (which
//! its kubelet set, and any kubelet could) is checked against the VM's VirtualMachineInstance
//! once; when it matches, the operator sets `catalyst.io.node-restriction.kubernetes.io/vm`,
//! which ServiceGroups select on and no kubelet may set. The label stays with that Node object:
//! a Node registered again under the same name starts unverified.

use super::conditions::{NODE_VERIFIED, Wanted, wanted};
use super::{Context, Error, key_of};
use catalyst_api::kubevirt::VirtualMachineInstance;
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::node_identity::{Identity, is_labelled_as, verify};
use catalyst_core::render::{FIELD_MANAGER, labels};
use catalyst_core::validation::node_name;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

/// The `NodeVerified` condition, and whether to look again soon: a node that claims the VM but
/// does not match yet (its instance has no address so far) is checked again, as nothing else
/// wakes the VM when KubeVirt updates the instance.
pub async fn node(
    vm: &CatalystVM,
    host: &CatalystHost,
    node: Option<&Node>,
    ctx: &Context,
) -> Result<(Wanted, bool), Error> {
    let expected = node_name(vm);
    let Some(node) = node else {
        return Ok((wanted(NODE_VERIFIED, false, "NoNode", "no node claims this VM yet"), false));
    };
    let name = node.name_any();
    if is_labelled_as(node, &expected) {
        let message = format!("node {name} carries {}={expected}", labels::VERIFIED_VM);
        return Ok((wanted(NODE_VERIFIED, true, "Verified", message), false));
    }
    let namespace = vm.namespace().unwrap_or_default();
    let instances: Api<VirtualMachineInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let instance =
        instances.get_opt(&vm.name_any()).await.map_err(|source| Error::ReadInstance { vm: key_of(vm), source })?;
    let identity = verify(node, instance.as_ref(), &host.spec.node_name);
    let message = identity.message(&name, &host.spec.node_name);
    if identity.is_verified() {
        label(&name, &expected, ctx).await?;
        ctx.event(&vm.object_ref(&()), EventType::Normal, identity.reason(), message.clone()).await;
        return Ok((wanted(NODE_VERIFIED, true, identity.reason(), message), false));
    }
    if matches!(identity, Identity::AddressMismatch { .. }) {
        let already = vm.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == NODE_VERIFIED));
        if already.is_none_or(|c| c.reason != identity.reason()) {
            ctx.event(&vm.object_ref(&()), EventType::Warning, identity.reason(), message.clone()).await;
        }
    }
    Ok((wanted(NODE_VERIFIED, false, identity.reason(), message), true))
}

/// Sets the verified label on the node, and only that: a server-side apply of one label.
async fn label(node: &str, value: &str, ctx: &Context) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node, "labels": {labels::VERIFIED_VM: value}},
    });
    nodes
        .patch(node, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&patch))
        .await
        .map(drop)
        .map_err(|source| Error::LabelNode { node: node.to_string(), source })
}
