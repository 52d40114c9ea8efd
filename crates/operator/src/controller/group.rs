//! ServiceGroup -> a StatefulSet of pinned, Guaranteed replicas and its headless Service.
//!
//! A group that does not fit what its VM's node offers (after the groups before it, in name
//! order), or whose VM does not exist, is refused: `Ready=False` with the reason and an event,
//! and nothing already running is touched.

use super::apply;
use super::conditions::{READY, wanted};
use super::refusal::Refusal;
use super::{Context, Error, key_of, pinning, reconcile_guarded, refuse, report, valid};
use catalyst_api::{CatalystVM, ServiceGroup};
use catalyst_core::planner::{self, GroupModel, VmModel};
use catalyst_core::render;
use catalyst_core::validation::{summary, validate_group};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(guard: Arc<DeserializeGuard<ServiceGroup>>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_guarded("ServiceGroup", guard, ctx, |group, ctx| async move { apply(&group, &ctx).await }).await
}

/// Whether the group fits what its VM's node offers, and if not, why.
fn fit(group: &ServiceGroup, vm: &CatalystVM, ctx: &Context) -> Result<(), String> {
    let guards = ctx.stores.groups_of_vm(&group.namespace().unwrap_or_default(), &group.spec.vm);
    let key = key_of(group);
    let mut groups: Vec<GroupModel> =
        valid(&guards).filter(|g| g.metadata.name != group.metadata.name).map(GroupModel::from_group).collect();
    groups.push(GroupModel::from_group(group));
    let model = VmModel::from_vm(vm, &ctx.overhead);
    let threads = ctx.host_threads(vm);
    let (plans, violations) = planner::fit_groups(&groups, &[&model], |_| threads);
    if plans.iter().any(|p| p.group == key && p.fits) {
        return Ok(());
    }
    Err(planner::reasons(&violations, &planner::Subject::group(&key)))
}

/// Validates the group, finds its VM and checks that the group fits what the VM's node offers.
fn prepare(group: &ServiceGroup, ctx: &Context) -> Result<CatalystVM, Refusal> {
    validate_group(group).map_err(|errors| Refusal::InvalidSpec { errors: summary(&errors) })?;
    let namespace = group.namespace().unwrap_or_default();
    let vm = ctx
        .stores
        .vm(&namespace, &group.spec.vm)
        .ok_or_else(|| Refusal::VmNotFound { vm: group.spec.vm.clone(), namespace })?;
    fit(group, &vm, ctx).map_err(|why| Refusal::DoesNotFit { why })?;
    Ok(vm)
}

/// The pipeline: prepare, build and apply the Service and the StatefulSet, derive the status
/// from the StatefulSet the API server returned, report.
async fn apply(group: &ServiceGroup, ctx: &Context) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let mut status = group.status.clone().unwrap_or_default();
    let demand = GroupModel::from_group(group).demand;
    status.requested = Some(demand.into());

    let vm = match prepare(group, ctx) {
        Ok(vm) => vm,
        Err(refusal) => return refuse(group, group.status.as_ref(), status, ctx, &refusal).await,
    };

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    apply::apply_known(&services, render::headless_service(group), &ctx.known, |_: &Service| None::<()>).await?;
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed =
        apply::apply_known(&sets, render::stateful_set(group, &vm), &ctx.known, |s: &StatefulSet| s.status.clone())
            .await?
            .unwrap_or_default();
    status.replicas = observed.replicas;
    status.ready_replicas = observed.ready_replicas.unwrap_or(0);
    let pinning = pinning::group(group, &vm, ctx);
    let repair_again = pinning::repair(group, &pinning, ctx).await?;
    status.cores = pinning.cores.clone();
    let pinned = pinning.pinned;
    let ready = if status.ready_replicas >= group.spec.replicas {
        wanted(READY, true, "Ready", format!("{}/{} replicas ready", status.ready_replicas, group.spec.replicas))
    } else {
        wanted(READY, false, "Progressing", format!("{}/{} replicas ready", status.ready_replicas, group.spec.replicas))
    };
    let old_conditions = group.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    pinning::warn_when_false(&group.object_ref(&()), old_conditions, &pinned, ctx).await;
    // Looked at again before its node's report stops being believed, and when the next replica
    // may be recreated.
    let next = [Some(RESYNC), pinning.recheck, repair_again].into_iter().flatten().min().unwrap_or(RESYNC);
    report(group, group.status.as_ref(), status, ctx, &[ready, pinned], false, Action::requeue(next)).await
}
