//! ServiceGroup -> a StatefulSet of pinned, Guaranteed replicas and its headless Service.
//!
//! A group that does not fit what its VM's node offers (after the groups before it, in name
//! order), or whose VM does not exist, is refused: `Ready=False` with the reason and an event,
//! and nothing already running is touched.
//!
//! The reconcile is a pipeline of named steps ([`reconcile_group`]): [`dereference`] reads what
//! the group needs through the caches, [`validate`] and [`build`] are pure (data in, a verdict
//! or the desired objects out), then the children are applied and the status reported.

use super::apply;
use super::conditions::{READY, wanted};
use super::refusal::Refusal;
use super::{Context, Error, key_of, pinning, reconcile_guarded, refuse, report, valid};
use catalyst_api::{CatalystVM, ServiceGroup};
use catalyst_core::key::ObjectKey;
use catalyst_core::planner::{self, GroupModel, Overhead, VmModel};
use catalyst_core::render;
use catalyst_core::validation::{summary, validate_group};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Service;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(guard: Arc<DeserializeGuard<ServiceGroup>>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_guarded("ServiceGroup", guard, ctx, |group, ctx| async move { reconcile_group(&group, &ctx).await }).await
}

/// What a group's reconcile reads besides the group: its VM, the other valid groups of that VM,
/// the threads per core of the VM's host, and the launchers' overhead.
pub struct Dereferenced {
    pub vm: Option<CatalystVM>,
    pub siblings: Vec<ServiceGroup>,
    pub threads: u64,
    pub overhead: Overhead,
}

/// Reads, through the caches, what the group's validation needs.
pub fn dereference(group: &ServiceGroup, ctx: &Context) -> Dereferenced {
    let vm_key = ObjectKey::beside(group, &group.spec.vm);
    let vm = ctx.stores.vm(&vm_key);
    let guards = ctx.stores.groups_of_vm(&vm_key);
    let siblings = valid(&guards).filter(|g| g.metadata.name != group.metadata.name).cloned().collect();
    let threads = vm.as_ref().map_or(1, |vm| ctx.host_threads(vm));
    Dereferenced { vm, siblings, threads, overhead: ctx.overhead }
}

/// Whether the group fits what its VM's node offers next to its siblings (groups before it in
/// name order come first), and if not, why.
pub fn fit(group: &ServiceGroup, vm: &CatalystVM, world: &Dereferenced) -> Result<(), String> {
    let key = key_of(group);
    let mut groups: Vec<GroupModel> = world.siblings.iter().map(GroupModel::from_group).collect();
    groups.push(GroupModel::from_group(group));
    let model = VmModel::from_vm(vm, &world.overhead);
    let (plans, violations) = planner::fit_groups(&groups, &[&model], |_| world.threads);
    if plans.iter().any(|p| p.group == key && p.fits) {
        return Ok(());
    }
    Err(planner::reasons(&violations, &planner::Subject::group(&key)))
}

/// A group that may be built: valid, its VM found, fitting it.
pub struct Validated<'a> {
    pub group: &'a ServiceGroup,
    pub vm: &'a CatalystVM,
}

/// Validates the group, finds its VM and checks that the group fits what the VM's node offers.
pub fn validate<'a>(group: &'a ServiceGroup, world: &'a Dereferenced) -> Result<Validated<'a>, Refusal> {
    validate_group(group).map_err(|errors| Refusal::InvalidSpec { errors: summary(&errors) })?;
    let vm = world.vm.as_ref().ok_or_else(|| Refusal::VmNotFound {
        vm: group.spec.vm.clone(),
        namespace: group.namespace().unwrap_or_default(),
    })?;
    fit(group, vm, world).map_err(|why| Refusal::DoesNotFit { why })?;
    Ok(Validated { group, vm })
}

/// The children the group should have: its headless Service and its StatefulSet.
pub fn build(validated: &Validated) -> (Service, StatefulSet) {
    (render::headless_service(validated.group), render::stateful_set(validated.group, validated.vm))
}

/// The pipeline: dereference, validate (or refuse), build, apply the Service and the
/// StatefulSet, derive the status from the StatefulSet the API server returned, report.
async fn reconcile_group(group: &ServiceGroup, ctx: &Context) -> Result<Action, Error> {
    let namespace = group.namespace().unwrap_or_default();
    let mut status = group.status.clone().unwrap_or_default();
    status.requested = Some(GroupModel::from_group(group).demand.into());
    let world = dereference(group, ctx);
    let validated = match validate(group, &world) {
        Ok(validated) => validated,
        Err(refusal) => return refuse(group, group.status.as_ref(), status, ctx, &refusal).await,
    };
    let (service, set) = build(&validated);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    apply::apply_known::<_, apply::Unread>(&services, service, &ctx.known).await?;
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed: StatefulSetStatus = apply::apply_known(&sets, set, &ctx.known).await?.unwrap_or_default();
    status.replicas = observed.replicas;
    status.ready_replicas = observed.ready_replicas.unwrap_or(0);
    let vm = validated.vm;
    let pinning = pinning::group(group, vm, &pinning::read(ctx, &catalyst_core::validation::node_name(vm)));
    let labels = pinning.verdicts.iter().map(catalyst_core::pinning::Verdict::label);
    ctx.metrics.verdicts("ServiceGroup", &key_of(group), "replica", labels);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from(value: serde_json::Value) -> ServiceGroup {
        serde_json::from_value(value).unwrap()
    }

    fn group(name: &str, replicas: u32, cpu: u32) -> ServiceGroup {
        from(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"vm": "api", "replicas": replicas, "cpu": cpu, "memory": "1Gi", "template": {"image": "img"}}
        }))
    }

    fn vm(cpu: u32) -> CatalystVM {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
            "metadata": {"name": "api", "namespace": "team"},
            "spec": {"cpu": cpu, "memory": "32Gi", "bootDisk": {"containerDisk": {"image": "img"}},
                     "node": {"joinSecretName": "join", "software": {"kubernetesVersion": "v1.35"}}}
        }))
        .unwrap()
    }

    fn world(vm: Option<CatalystVM>, siblings: Vec<ServiceGroup>) -> Dereferenced {
        Dereferenced { vm, siblings, threads: 1, overhead: Overhead::default() }
    }

    #[test]
    fn a_group_that_fits_builds_its_service_and_statefulset() {
        let sms = group("sms", 3, 2);
        let world = world(Some(vm(8)), vec![]);
        let validated = validate(&sms, &world).unwrap_or_else(|r| panic!("{}", r.message()));
        let (service, set) = build(&validated);
        assert_eq!(service.metadata.name.as_deref(), Some("sms"));
        assert_eq!(set.spec.unwrap().replicas, Some(3));
    }

    #[test]
    fn a_missing_vm_and_a_group_past_what_its_siblings_leave_are_refused() {
        let sms = group("sms", 3, 2);
        let missing = world(None, vec![]);
        assert!(matches!(validate(&sms, &missing), Err(Refusal::VmNotFound { .. })));
        // 8 cores less the node's 1 and 0.5 of headroom: 6.5; the sibling takes 4.
        let crowded = world(Some(vm(8)), vec![group("api-cache", 2, 2)]);
        match validate(&sms, &crowded) {
            Err(Refusal::DoesNotFit { why }) => assert!(why.contains("cpu"), "{why}"),
            other => panic!("expected DoesNotFit, got {:?}", other.err().map(|r| r.message())),
        }
        let invalid = from(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup",
            "metadata": {"name": "sms", "namespace": "team"},
            "spec": {"vm": "api", "replicas": 1, "cpu": 1, "memory": "0", "template": {"image": "img"}}
        }));
        assert!(matches!(validate(&invalid, &world(Some(vm(8)), vec![])), Err(Refusal::InvalidSpec { .. })));
    }
}
