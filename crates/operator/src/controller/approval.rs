//! The kubelet client certificate of each VM-node, approved by the operator (with minted
//! tokens): the I/O around [`catalyst_core::kubelet_csr`]. A request from a token the operator
//! minted for a VM, for that VM's node, is approved; any other request from Catalyst's group is
//! denied, with a Warning on the VM; everything else is left to kube-controller-manager.
//! kube-controller-manager's signer then signs what is approved.

use super::{Context, Error, join_token};
use catalyst_core::kubelet_csr::{Review, review};
use catalyst_core::validation::vm_of_node;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = decide(&csr, &ctx).await;
    ctx.reconciled("CertificateSigningRequest", started, &result);
    result
}

async fn decide(csr: &CertificateSigningRequest, ctx: &Context) -> Result<Action, Error> {
    let review = review(csr, |token| join_token::node_of_token(ctx, token));
    let (type_, reason, message, node) = match review {
        Review::NotOurs => return Ok(Action::await_change()),
        Review::Approve { node, message } => ("Approved", "CatalystVMNode", message, Some(node)),
        Review::Deny { reason, message } => {
            let node = join_token::node_of_token(ctx, token_id(csr).unwrap_or_default());
            ("Denied", reason, message, node)
        }
    };
    // Several operators may share a cluster, each with its namespaces: the VM's decides.
    let vm = node.as_deref().and_then(vm_of_node);
    if let Some(namespace) = vm.as_ref().and_then(|vm| vm.namespace())
        && !ctx.namespaces.is_empty()
        && !ctx.namespaces.iter().any(|n| n == namespace)
    {
        return Ok(Action::await_change());
    }
    let mut decided = csr.clone();
    let conditions = decided.status.get_or_insert_default().conditions.get_or_insert_default();
    conditions.push(CertificateSigningRequestCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.clone()),
        last_update_time: Some((ctx.clock)()),
        ..CertificateSigningRequestCondition::default()
    });
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    api.replace_subresource("approval", &csr.name_any(), &PostParams::default(), &decided)
        .await
        .map_err(|source| Error::DecideCertificate { csr: csr.name_any(), source })?;
    tracing::info!(csr = %csr.name_any(), decision = type_, reason, %message, "kubelet client certificate");
    if let Some(vm) = vm.and_then(|vm| ctx.stores.vm(&vm)) {
        let (event, reason) = if type_ == "Approved" {
            (EventType::Normal, "NodeCertificateApproved")
        } else {
            (EventType::Warning, reason)
        };
        ctx.event(&vm.object_ref(&()), event, reason, message).await;
    }
    Ok(Action::await_change())
}

/// The bootstrap token id a request was made with, if it was.
fn token_id(csr: &CertificateSigningRequest) -> Option<&str> {
    csr.spec.username.as_deref()?.strip_prefix(catalyst_core::kubelet_csr::BOOTSTRAP_USER_PREFIX)
}

/// A failed decision is tried again soon: a kubelet waits on it.
pub fn error_policy(csr: Arc<CertificateSigningRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ErrorLabels { kind: "CertificateSigningRequest".into(), error: error.label() })
        .inc();
    tracing::warn!(csr = %csr.name_any(), %error, "deciding a certificate signing request failed");
    Action::requeue(Duration::from_secs(5))
}
