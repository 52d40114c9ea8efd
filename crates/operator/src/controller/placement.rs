//! Placement: which CatalystHost each CatalystVM gets, written into the hosts' ledgers.
//!
//! ## Safe under concurrency, restarts and failover
//! The truth is in the API server, never in memory. Each CatalystHost's `status.vms` is the
//! ledger of the VMs it holds. A placement lists the hosts afresh, plans the whole layout from
//! their ledgers (every placed VM sticky), then appends VMs to a host's ledger with a
//! compare-and-swap: a `replace` of the host's status carrying the `resourceVersion` it listed,
//! after checking that the ledger still leaves room. Placements in one process take turns (two
//! would otherwise plan from the same snapshot and break a spread group across two hosts);
//! placements of two processes (a leader handing over) cannot both win the same host: the
//! second write gets 409 Conflict and plans again. Only then is the host written into the VM's
//! own status; an operator that dies in between finds the VM in a ledger on restart and adopts
//! that host.
//!
//! ## In batches
//! One turn places every VM that waits, not only the one reconciled: the plan covers them all
//! anyway, so its placements are committed host by host, one ledger write per host for all the
//! VMs it takes, the reconciled VM's host first. A write that loses its compare-and-swap on
//! another host is dropped: those VMs plan again in their own turn. The other VMs then find
//! their reservation in the cached ledgers and adopt it without a turn, a list or a plan. A
//! reservation in a cached ledger can be trusted: only this operator writes entries, and only
//! the VM's own clean-up, or the host's reconcile once the VM is gone, removes them. A VM
//! deleted before it adopted its reservation is released by its host's reconcile.

use super::{Context, Error, key_of, read_unseen, valid};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::planner::{self, HostModel, PlanInput, Res, VmModel};
use kube::api::PostParams;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};

/// What became of the attempt to give the VM a host.
pub enum Placement {
    On(String),
    Nowhere(String),
}

/// The VM's host: the one its status names, a reservation in a ledger, or a new placement.
pub async fn place(vm: &CatalystVM, ctx: &Context) -> Result<Placement, Error> {
    if let Some(host) = vm.status.as_ref().and_then(|s| s.host.clone()) {
        return Ok(Placement::On(host));
    }
    let key = key_of(vm);
    if let Some(host) = cached_reservation(ctx, &key) {
        return Ok(adopt(host));
    }
    // One placement at a time in this process (exactly one process writes, by leader
    // election), planned from the hosts' ledgers as the API server has them now.
    let _one_at_a_time = ctx.placement.lock().await;
    let pool = kube::api::ListParams {
        label_selector: ctx.host_pool.label_selector().map(str::to_string),
        ..Default::default()
    };
    let fresh = Api::<CatalystHost>::all(ctx.client.clone()).list(&pool).await.map_err(Error::ListHosts)?.items;
    let keys: Vec<String> = fresh.iter().filter_map(|h| h.status.as_ref()).flat_map(|s| s.vms.clone()).collect();
    let (unseen, _) = read_unseen(ctx, &keys).await?;
    let input = plan_input(ctx, vm, &fresh.iter().collect::<Vec<_>>(), &unseen);
    if let Some(host) = input.vms.iter().find(|m| m.key == key).and_then(|m| m.placed.clone()) {
        return Ok(adopt(host));
    }
    let plan = planner::plan_within(&input, ctx.search);
    let Some(host) = plan.vms.iter().find(|p| p.vm == key).and_then(|p| p.host.clone()) else {
        return Ok(Placement::Nowhere(planner::reasons(&plan.violations, &planner::Subject::vm(&key))));
    };
    let mut batches = waiting_placements(ctx, &input, &plan);
    let mut fresh: BTreeMap<String, CatalystHost> = fresh.into_iter().map(|h| (h.name_any(), h)).collect();
    let mine = batches.remove(&host).unwrap_or_default();
    let chosen = fresh.remove(&host).expect("the plan chose a listed host");
    reserve(ctx, chosen, &mine, &input).await.map_err(|error| match error {
        Reservation::Lost => Error::PlacementRace { vm: key.clone(), host: host.clone() },
        Reservation::Failed(source) => Error::ReserveHost { host: host.clone(), source },
    })?;
    announce(ctx, &host, &mine).await;
    for (other, keys) in batches {
        let Some(listed) = fresh.remove(&other) else { continue };
        match reserve(ctx, listed, &keys, &input).await {
            Ok(()) => announce(ctx, &other, &keys).await,
            Err(error) => tracing::debug!(host = %other, ?error, "a batched placement was dropped; its VMs plan again"),
        }
    }
    tracing::info!(%host, batch = mine.len(), "placed");
    Ok(Placement::On(host))
}

/// A `Placed` event for each VM just written into `host`'s ledger, once, when it is written.
async fn announce(ctx: &Context, host: &str, keys: &[String]) {
    for key in keys {
        let Some((namespace, name)) = catalyst_core::key::split(key) else { continue };
        if let Some(vm) = ctx.stores.vm(namespace, name) {
            ctx.event(&vm.object_ref(&()), EventType::Normal, "Placed", format!("placed on CatalystHost {host}")).await;
        }
    }
}

/// A host whose cached ledger holds the VM.
fn cached_reservation(ctx: &Context, key: &str) -> Option<String> {
    valid(&ctx.stores.hosts()).find(|h| h.status.iter().any(|s| s.vms.iter().any(|k| k == key))).map(|h| h.name_any())
}

/// A reservation written by a batch (its `Placed` event was published then) or before a crash.
fn adopt(host: String) -> Placement {
    tracing::debug!(%host, "adopting the reservation found in the host's ledger");
    Placement::On(host)
}

/// The VMs the plan places that hold no place yet, by host: the valid ones not being deleted
/// (the reconciled VM is among them).
fn waiting_placements(ctx: &Context, input: &PlanInput, plan: &planner::Plan) -> BTreeMap<String, Vec<String>> {
    let guards = ctx.stores.vms.state();
    let deleting: std::collections::HashSet<String> =
        valid(&guards).filter(|vm| vm.metadata.deletion_timestamp.is_some()).map(key_of).collect();
    let waiting: std::collections::HashSet<&str> =
        input.vms.iter().filter(|m| m.placed.is_none()).map(|m| m.key.as_str()).collect();
    let mut batches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for placed in &plan.vms {
        if let Some(host) = &placed.host
            && waiting.contains(placed.vm.as_str())
            && !deleting.contains(&placed.vm)
        {
            batches.entry(host.clone()).or_default().push(placed.vm.clone());
        }
    }
    batches
}

/// The host each VM holds a place on: its status, or a ledger entry not yet copied there.
fn placements(hosts: &[&CatalystHost], vms: &[&CatalystVM]) -> HashMap<String, String> {
    let mut placed: HashMap<String, String> = HashMap::new();
    for host in hosts {
        for key in host.status.iter().flat_map(|s| &s.vms) {
            placed.insert(key.clone(), host.name_any());
        }
    }
    for vm in vms {
        if let Some(host) = vm.status.as_ref().and_then(|s| s.host.clone()) {
            placed.insert(key_of(*vm), host);
        }
    }
    placed
}

/// The layout as the planner sees it: `hosts`, and the VMs of the store with `current` (the
/// object being reconciled) in place of its possibly older copy.
fn plan_input(ctx: &Context, current: &CatalystVM, hosts: &[&CatalystHost], unseen: &[CatalystVM]) -> PlanInput {
    let vm_guards = ctx.stores.vms.state();
    let current_key = key_of(current);
    let mut vms: Vec<&CatalystVM> = valid(&vm_guards).filter(|vm| key_of(*vm) != current_key).collect();
    vms.push(current);
    vms.extend(unseen.iter().filter(|vm| key_of(*vm) != current_key));
    let placed = placements(hosts, &vms);
    PlanInput {
        hosts: hosts.iter().map(|h| HostModel::from_host(h)).collect(),
        vms: vms
            .iter()
            .map(|vm| {
                let mut model = VmModel::from_vm(vm, &ctx.overhead);
                model.placed = placed.get(&model.key).cloned();
                model
            })
            .collect(),
        groups: Vec::new(),
    }
}

#[derive(Debug)]
enum Reservation {
    /// The ledger changed since it was listed, or no longer has room: plan again.
    Lost,
    Failed(kube::Error),
}

/// Appends `keys` to the ledger of `host` (as just listed) with a compare-and-swap on the
/// resourceVersion it was listed at, after checking its ledger still leaves room for them.
async fn reserve(ctx: &Context, mut host: CatalystHost, keys: &[String], input: &PlanInput) -> Result<(), Reservation> {
    let mut status = host.status.clone().unwrap_or_default();
    let new: Vec<&String> = keys.iter().filter(|k| !status.vms.contains(k)).collect();
    if new.is_empty() {
        return Ok(());
    }
    // The plan's VMs include every ledger entry (those the cache had not seen were read).
    let demands: HashMap<&str, Res> = input.vms.iter().map(|m| (m.key.as_str(), m.demand)).collect();
    let used = status.vms.iter().chain(new.iter().copied()).filter_map(|k| demands.get(k.as_str())).copied();
    if !HostModel::from_host(&host).allocatable.covers(&used.fold(Res::default(), |sum, d| sum + d)) {
        return Err(Reservation::Lost);
    }
    status.vms.extend(new.into_iter().cloned());
    status.vms.sort();
    host.status = Some(status);
    let api: Api<CatalystHost> = Api::all(ctx.client.clone());
    match api.replace_status(&host.name_any(), &PostParams::default(), &host).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 409 => Err(Reservation::Lost),
        Err(source) => Err(Reservation::Failed(source)),
    }
}
