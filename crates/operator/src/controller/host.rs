//! CatalystHost status: allocatable, allocated and free from the VMs in its ledger, `Ready`
//! from its Node, and `Overcommitted` when what it holds exceeds what it offers.
//!
//! The ledger (`status.vms`) is written by the VM reconciler's compare-and-swap; this
//! reconciler keeps it whole (a VM whose status names the host is added unless it is being
//! deleted, a VM that no longer exists is dropped) and writes with the same compare-and-swap, so neither loses the other's
//! update.

use super::conditions::{self, OVERCOMMITTED, READY, wanted};
use super::{Context, Error, evacuation, key_of, pinning, read_unseen, reconcile_guarded, valid};
use catalyst_api::host::{CatalystHostStatus, HostSummary};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::planner::{HostModel, Res, VmModel};
use catalyst_core::quantity::{HumanBytes, HumanCores};
use catalyst_core::validation::{summary, validate_host};
use kube::api::PostParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(guard: Arc<DeserializeGuard<CatalystHost>>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_guarded("CatalystHost", guard, ctx, |host, ctx| async move { apply(&host, &ctx).await }).await
}

/// The status the host should have, from the VMs the cache knows and the `unseen` ones its
/// ledger holds, less the ledger entries whose VM is `gone`.
pub fn desired_status(
    host: &CatalystHost,
    ctx: &Context,
    unseen: &[CatalystVM],
    gone: &BTreeSet<String>,
) -> CatalystHostStatus {
    let name = host.name_any();
    let old = host.status.clone().unwrap_or_default();
    let guards = ctx.stores.vms_on(&name);
    let unseen_by_key: std::collections::HashMap<String, &CatalystVM> =
        unseen.iter().map(|vm| (key_of(vm), vm)).collect();
    let lookup = |key: &str| {
        let (namespace, vm) = catalyst_core::key::split(key)?;
        ctx.stores.vm(namespace, vm).or_else(|| unseen_by_key.get(key).map(|vm| (*vm).clone()))
    };
    // An entry stays while its VM holds a place here: placed here, moving here, or reserved by a
    // placement that has not reached the VM's status yet. One whose VM is placed elsewhere and
    // not moving here is a move that ended (the VM's own reconcile releases it too).
    let holds_here = |key: &String| match lookup(key) {
        Some(vm) => vm.status.as_ref().is_none_or(|s| {
            s.host.is_none() || s.host.as_deref() == Some(&name) || s.moving.as_ref().is_some_and(|m| m.to == name)
        }),
        None => true,
    };
    let mut ledger: BTreeSet<String> =
        old.vms.iter().filter(|k| !gone.contains(*k)).filter(|k| holds_here(k)).cloned().collect();
    // A VM whose status names this host but which the ledger lacks is put back, unless it is
    // being deleted: its clean-up has released it, and the cache may not have seen it go yet.
    ledger.extend(
        valid(&guards)
            .chain(unseen)
            .filter(|vm| vm.metadata.deletion_timestamp.is_none())
            .filter(|vm| vm.status.as_ref().and_then(|s| s.host.as_deref()) == Some(&name))
            .map(key_of),
    );
    // The ledger is short; the VMs are many: each entry is looked up, no key is built per VM.
    let allocated = ledger
        .iter()
        .filter_map(|key| lookup(key))
        .fold(Res::ZERO, |sum, vm| sum + VmModel::from_vm(&vm, &ctx.overhead).demand);
    let allocatable = HostModel::from_host(host).allocatable;

    let node = ctx.stores.nodes.get(&ObjectRef::new(&host.spec.node_name));
    let node_ready = node
        .as_deref()
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    let mut wanted_conditions = vec![match (validate_host(host), node_ready) {
        (Err(errors), _) => wanted(READY, false, "InvalidSpec", summary(&errors)),
        (Ok(()), Some(true)) => wanted(READY, true, "NodeReady", format!("node {} is Ready", host.spec.node_name)),
        (Ok(()), Some(false)) => {
            wanted(READY, false, "NodeNotReady", format!("node {} is not Ready", host.spec.node_name))
        }
        (Ok(()), None) => wanted(READY, false, "NodeNotFound", format!("node {} not found", host.spec.node_name)),
    }];
    wanted_conditions.push(if allocatable.covers(&allocated) {
        wanted(OVERCOMMITTED, false, "WithinCapacity", "its VMs fit what it offers")
    } else {
        wanted(OVERCOMMITTED, true, "VMsExceedCapacity", format!("its VMs take {allocated}, it offers {allocatable}"))
    });
    let evacuation = evacuation::evacuation(host, ctx);
    let mut old_conditions = old.conditions.clone();
    match &evacuation {
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
        cores: pinning::host_cores(host, &ledger, ctx),
        evacuation: evacuation.map(|(evacuation, _)| evacuation),
        vms: ledger.into_iter().collect(),
        conditions: conditions::merge(&old_conditions, &wanted_conditions, generation, &(ctx.clock)()),
        observed_generation: generation,
    }
}

async fn apply(host: &CatalystHost, ctx: &Context) -> Result<Action, Error> {
    let ledger = host.status.as_ref().map(|s| s.vms.clone()).unwrap_or_default();
    let (unseen, gone) = read_unseen(ctx, &ledger).await?;
    let status = desired_status(host, ctx, &unseen, &gone);
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
