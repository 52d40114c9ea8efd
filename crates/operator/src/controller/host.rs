//! CatalystHost status: allocatable, allocated and free from the VMs in its ledger, `Ready`
//! from its Node, and `Overcommitted` when what it holds exceeds what it offers.
//!
//! The ledger (`status.vms`) is written by the VM reconciler's compare-and-swap; this
//! reconciler keeps it whole (a VM whose status names the host is added unless it is being
//! deleted, a VM that no longer exists is dropped) and writes with the same compare-and-swap, so neither loses the other's
//! update.

use super::conditions::{self, OVERCOMMITTED, READY, Wanted, wanted};
use super::{
    Context, Error, evacuation, key_of, ledger_of, object_ref, pinning, read_unseen, reconcile_guarded, valid,
};
use catalyst_api::host::{CatalystHostStatus, Evacuation, HostCores, HostSummary};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::planner::{HostModel, Overhead, Res, VmModel};
use catalyst_core::quantity::{HumanBytes, HumanCores};
use catalyst_core::validation::{summary, validate_host};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(guard: Arc<DeserializeGuard<CatalystHost>>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_guarded("CatalystHost", guard, ctx, |host, ctx| async move { reconcile_host(&host, &ctx).await }).await
}

/// What a host's reconcile reads besides the host, through the caches and the API server.
pub struct Dereferenced {
    /// The valid VMs whose status names the host, and those its ledger holds that the cache has
    /// not seen yet (read from the API server). Shared with the cache, not copied: a host is
    /// reconciled at every change of one of its VMs.
    pub placed_here: Vec<Vm>,
    /// Every VM the ledger or `placed_here` names that exists.
    pub known: BTreeMap<ObjectKey, Vm>,
    /// Ledger entries whose VM no longer exists.
    pub gone: BTreeSet<ObjectKey>,
    /// The host's Node's Ready condition; `None` when there is no such Node.
    pub node_ready: Option<bool>,
    /// The drain or loss under way, with its condition.
    pub evacuation: Option<(Evacuation, Wanted)>,
    pub overhead: Overhead,
    /// The time written into condition transitions.
    pub now: Time,
}

/// A VM as the cache shares it, or as read from the API server; only valid ones are kept.
pub type Vm = Arc<DeserializeGuard<CatalystVM>>;

/// The VM a kept [`Vm`] holds.
fn vm_of(vm: &Vm) -> Option<&CatalystVM> {
    vm.0.as_ref().ok()
}

/// Reads what the host's status is made from; the ledger's VMs the cache has not seen are read
/// from the API server.
pub async fn dereference(host: &CatalystHost, ctx: &Context) -> Result<Dereferenced, Error> {
    let old_ledger: Vec<ObjectKey> = ledger_of(host).collect();
    let (unseen, gone) = read_unseen(ctx, &old_ledger).await?;
    let mut placed_here: Vec<Vm> = ctx.stores.vms_on(Some(HostName::of(host)));
    placed_here.extend(unseen.into_iter().map(|vm| Arc::new(DeserializeGuard(Ok(vm)))));
    let mut known: BTreeMap<ObjectKey, Vm> =
        placed_here.iter().filter_map(|vm| Some((key_of(vm_of(vm)?), vm.clone()))).collect();
    for key in old_ledger {
        if let Some(vm) = ctx.stores.vms.get(&object_ref(&key)).filter(|vm| vm_of(vm).is_some()) {
            known.entry(key).or_insert(vm);
        }
    }
    let node = ctx.stores.nodes.get(&ObjectRef::new(&host.spec.node_name));
    let node_ready = node
        .as_deref()
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    let evacuation = evacuation::evacuation(host, ctx);
    Ok(Dereferenced { placed_here, known, gone, node_ready, evacuation, overhead: ctx.overhead, now: (ctx.clock)() })
}

/// The ledger the host should have: its entries whose VM still holds a place here (placed here,
/// moving here, or reserved by a placement that has not reached the VM's status yet), less
/// those whose VM is gone, plus the VMs whose status names the host and are not being deleted.
pub fn ledger(host: &CatalystHost, world: &Dereferenced) -> BTreeSet<ObjectKey> {
    let name = host.name_any();
    // One whose VM is placed elsewhere and not moving here is a move that ended (the VM's own
    // reconcile releases it too).
    let holds_here = |key: &ObjectKey| match world.known.get(key).and_then(vm_of) {
        Some(vm) => vm.status.as_ref().is_none_or(|s| {
            s.host.is_none() || s.host.as_deref() == Some(&name) || s.moving.as_ref().is_some_and(|m| m.to == name)
        }),
        None => true,
    };
    let mut ledger: BTreeSet<ObjectKey> =
        ledger_of(host).filter(|k| !world.gone.contains(k)).filter(|k| holds_here(k)).collect();
    // A VM whose status names this host but which the ledger lacks is put back, unless it is
    // being deleted: its clean-up has released it, and the cache may not have seen it go yet.
    ledger.extend(
        valid(&world.placed_here)
            .filter(|vm| vm.metadata.deletion_timestamp.is_none())
            .filter(|vm| vm.status.as_ref().and_then(|s| s.host.as_deref()) == Some(&name))
            .map(key_of),
    );
    ledger
}

/// The status the host should have, from `world`, its `ledger` and the `cores` its node's
/// report shows.
pub fn desired_status(
    host: &CatalystHost,
    world: &Dereferenced,
    ledger: BTreeSet<ObjectKey>,
    cores: Option<HostCores>,
) -> CatalystHostStatus {
    let old = host.status.clone().unwrap_or_default();
    let allocated = ledger
        .iter()
        .filter_map(|key| world.known.get(key).and_then(vm_of))
        .fold(Res::ZERO, |sum, vm| sum + VmModel::demand_of(vm, &world.overhead));
    let allocatable = HostModel::from_host(host).allocatable;
    let node = &host.spec.node_name;
    let mut wanted_conditions = vec![match (validate_host(host), world.node_ready) {
        (Err(errors), _) => wanted(READY, false, "InvalidSpec", summary(&errors)),
        (Ok(()), Some(true)) => wanted(READY, true, "NodeReady", format!("node {node} is Ready")),
        (Ok(()), Some(false)) => wanted(READY, false, "NodeNotReady", format!("node {node} is not Ready")),
        (Ok(()), None) => wanted(READY, false, "NodeNotFound", format!("node {node} not found")),
    }];
    wanted_conditions.push(if allocatable.covers(&allocated) {
        wanted(OVERCOMMITTED, false, "WithinCapacity", "its VMs fit what it offers")
    } else {
        wanted(OVERCOMMITTED, true, "VMsExceedCapacity", format!("its VMs take {allocated}, it offers {allocatable}"))
    });
    let mut old_conditions = old.conditions.clone();
    match &world.evacuation {
        Some((_, condition)) => wanted_conditions.push(condition.clone()),
        // Maintenance ended (or never began): no Evacuated condition.
        None => old_conditions.retain(|c| c.type_ != evacuation::EVACUATED),
    }
    let generation = host.metadata.generation;
    CatalystHostStatus {
        allocatable: Some(allocatable.into()),
        allocated: Some(allocated.into()),
        free: Some((allocatable - allocated).into()),
        summary: Some(HostSummary {
            cpu: format!("{}/{}", HumanCores(allocated.millicores), HumanCores(allocatable.millicores)),
            memory: format!("{}/{}", HumanBytes(allocated.memory), HumanBytes(allocatable.memory)),
            vm_count: u32::try_from(ledger.len()).unwrap_or(u32::MAX),
        }),
        cores,
        evacuation: world.evacuation.as_ref().map(|(evacuation, _)| evacuation.clone()),
        vms: ledger.iter().map(ToString::to_string).collect(),
        conditions: conditions::merge(&old_conditions, &wanted_conditions, generation, &world.now),
        observed_generation: generation,
    }
}

/// The pipeline: dereference, the ledger and the status (pure, but for the core map the node's
/// report gives), then the status write (a compare-and-swap) and its events.
async fn reconcile_host(host: &CatalystHost, ctx: &Context) -> Result<Action, Error> {
    let world = dereference(host, ctx).await?;
    let ledger = ledger(host, &world);
    let report = pinning::read(ctx, &host.spec.node_name);
    let cores = pinning::host_cores(&report, ledger.iter().map(|vm| (vm, ctx.stores.launchers_of(vm))));
    let status = desired_status(host, &world, ledger, cores);
    let allocatable = HostModel::from_host(host).allocatable;
    let allocated = status.allocated.as_ref().map(Res::from).unwrap_or_default();
    ctx.metrics.host(&host.name_any(), allocated, allocatable - allocated);
    // More hosts reported than cached: some are gone (one that turned invalid is forgotten by
    // the periodic pruning). Counting first keeps each reconcile from scanning every host.
    if ctx.metrics.hosts_reported() > ctx.stores.hosts.len() {
        ctx.metrics.forget_hosts_except(|host| ctx.stores.host(host).is_some());
    }
    // An evacuating host is looked at again soon: a move elsewhere may free its spread group.
    let next =
        if status.evacuation.as_ref().is_some_and(|e| e.state == "Progressing") { evacuation::RECHECK } else { RESYNC };
    if host.status.as_ref() == Some(&status) {
        return Ok(Action::requeue(next));
    }
    let overcommitted = status.conditions.iter().any(|c| c.type_ == OVERCOMMITTED && c.status == "True");
    let was_overcommitted =
        host.status.iter().flat_map(|s| &s.conditions).any(|c| c.type_ == OVERCOMMITTED && c.status == "True");
    let mut updated = host.clone();
    updated.status = Some(status.clone());
    let api: Api<CatalystHost> = Api::all(ctx.client.clone());
    match api.replace_status(&host.name_any(), &PostParams::default(), &updated).await {
        Ok(_) => {}
        // Someone else (a placement) wrote first: the watch brings the new version.
        Err(kube::Error::Api(response)) if response.code == 409 => {
            return Err(Error::Conflict { kind: "CatalystHost", name: host.name_any() });
        }
        Err(source) => return Err(Error::WriteStatus { kind: "CatalystHost".into(), name: host.name_any(), source }),
    }
    if overcommitted && !was_overcommitted {
        let message =
            status.conditions.iter().find(|c| c.type_ == OVERCOMMITTED).map(|c| c.message.clone()).unwrap_or_default();
        ctx.event(&host.object_ref(&()), EventType::Warning, "Overcommitted", message).await;
    }
    announce_evacuation(host, &status, ctx).await;
    Ok(Action::requeue(next))
}

/// An event when the evacuation turns Blocked (a Warning, with why) or Complete.
async fn announce_evacuation(host: &CatalystHost, status: &CatalystHostStatus, ctx: &Context) {
    let state = |s: Option<&CatalystHostStatus>| s.and_then(|s| s.evacuation.as_ref()).map(|e| e.state.clone());
    let (before, now) = (state(host.status.as_ref()), state(Some(status)));
    if before == now {
        return;
    }
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == evacuation::EVACUATED)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    match now.as_deref() {
        Some("Blocked") => ctx.event(&host.object_ref(&()), EventType::Warning, "EvacuationBlocked", message).await,
        Some("Complete") => ctx.event(&host.object_ref(&()), EventType::Normal, "Evacuated", message).await,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ledger: &[&str]) -> CatalystHost {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": "h1"},
            "spec": {"nodeName": "n1", "capacity": {"cpu": 16, "memory": "64Gi"}},
            "status": {"vms": ledger}
        }))
        .unwrap()
    }

    fn vm(name: &str, cpu: u32, on: Option<&str>) -> CatalystVM {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"cpu": cpu, "memory": "8Gi", "bootDisk": {"containerDisk": {"image": "img"}}},
            "status": {"host": on}
        }))
        .unwrap()
    }

    fn world(placed_here: Vec<CatalystVM>, elsewhere: Vec<CatalystVM>, gone: &[&str]) -> Dereferenced {
        let kept = |vm: CatalystVM| Arc::new(DeserializeGuard(Ok(vm)));
        let placed_here: Vec<Vm> = placed_here.into_iter().map(kept).collect();
        let elsewhere = elsewhere.into_iter().map(kept);
        let known = placed_here.iter().cloned().chain(elsewhere).map(|vm| (key_of(vm_of(&vm).unwrap()), vm)).collect();
        Dereferenced {
            placed_here,
            known,
            gone: gone.iter().map(|g| g.parse().unwrap()).collect(),
            node_ready: Some(true),
            evacuation: None,
            overhead: Overhead::default(),
            now: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn the_ledger_keeps_its_vms_drops_the_gone_and_the_moved_and_adds_the_placed() {
        let host = host(&["team/a", "team/moved", "team/gone", "team/reserved"]);
        let world = world(
            vec![vm("a", 4, Some("h1")), vm("b", 4, Some("h1"))],
            vec![vm("moved", 4, Some("h2")), vm("reserved", 2, None)],
            &["team/gone"],
        );
        let ledger = ledger(&host, &world);
        assert_eq!(ledger.iter().map(ToString::to_string).collect::<Vec<_>>(), ["team/a", "team/b", "team/reserved"]);
    }

    #[test]
    fn a_host_whose_vms_take_more_than_it_offers_is_overcommitted() {
        let host = host(&["team/a", "team/b"]);
        let world = world(vec![vm("a", 8, Some("h1")), vm("b", 8, Some("h1"))], vec![], &[]);
        let status = desired_status(&host, &world, ledger(&host, &world), None);
        let condition = status.conditions.iter().find(|c| c.type_ == OVERCOMMITTED).unwrap();
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "VMsExceedCapacity"));
        assert_eq!(status.summary.unwrap().cpu, "18.03/16");
        let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.reason, "NodeReady");
    }
}
