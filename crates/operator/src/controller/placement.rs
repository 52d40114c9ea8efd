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

use super::{Context, Error, PerObject, key_of, ledger_of, object_id, read_unseen, valid, vm_key};
use catalyst_api::{CatalystHost, CatalystVM};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::planner::{self, HostModel, PlanInput, Res, VmModel};
use kube::api::PostParams;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

/// What became of the attempt to give the VM a host.
pub enum Placement {
    On(HostName),
    Nowhere(String),
}

/// The VM's host: the one its status names, a reservation in a ledger, or a new placement.
pub async fn place(vm: &CatalystVM, ctx: &Context) -> Result<Placement, Error> {
    if let Some(host) = vm.status.as_ref().and_then(|s| s.host.clone()) {
        return Ok(Placement::On(HostName::from(host)));
    }
    let key = key_of(vm);
    if let Some(host) = ctx.stores.host_holding(&key) {
        return Ok(adopt(host));
    }
    // One placement at a time in this process (exactly one process writes, by leader
    // election), planned from the hosts' ledgers as the API server has them now.
    let _one_at_a_time = ctx.placement.lock().await;
    // The turn before this one may have placed this VM too.
    if let Some(host) = ctx.stores.host_holding(&key) {
        return Ok(adopt(host));
    }
    let pool = kube::api::ListParams {
        label_selector: ctx.host_pool.label_selector().map(str::to_string),
        ..Default::default()
    };
    let fresh = Api::<CatalystHost>::all(ctx.client.clone()).list(&pool).await.map_err(Error::ListHosts)?.items;
    let keys: Vec<ObjectKey> = fresh.iter().flat_map(ledger_of).collect();
    let (unseen, _) = read_unseen(ctx, &keys).await?;
    let input = plan_input(ctx, vm, &fresh.iter().collect::<Vec<_>>(), &unseen);
    if let Some(host) = input.vms.iter().find(|m| m.key == key).and_then(|m| m.placed.as_deref()) {
        return Ok(adopt(HostName::from(host)));
    }
    let (input, plan) = plan_aside(input, ctx.search).await;
    let Some(host) = plan.vms.iter().find(|p| p.vm == key).and_then(|p| p.host.as_deref()).map(HostName::from) else {
        return Ok(Placement::Nowhere(planner::reasons(&plan.violations, &planner::Subject::vm(&key))));
    };
    let mut batches = waiting_placements(ctx, &input, &plan);
    let mut fresh: BTreeMap<HostName, CatalystHost> = fresh.into_iter().map(|h| (HostName::of(&h), h)).collect();
    let mine = batches.remove(&host).unwrap_or_default();
    let chosen = fresh.remove(&host).expect("the plan chose a listed host");
    let demands = demands(&input);
    reserve(ctx, chosen, &mine, &demands).await.map_err(|error| match error {
        Reservation::Lost | Reservation::NoRoom => Error::PlacementRace { vm: key.clone(), host: host.clone() },
        Reservation::Failed(source) => Error::ReserveHost { host: host.clone(), source },
    })?;
    announce(ctx, &host, &mine).await;
    for (other, keys) in batches {
        let Some(listed) = fresh.remove(&other) else { continue };
        match reserve(ctx, listed, &keys, &demands).await {
            Ok(()) => announce(ctx, &other, &keys).await,
            Err(error) => tracing::debug!(host = %other, ?error, "a batched placement was dropped; its VMs plan again"),
        }
    }
    tracing::info!(%host, batch = mine.len(), "placed");
    Ok(Placement::On(host))
}

/// A `Placed` event for each VM just written into `host`'s ledger, once, when it is written.
async fn announce(ctx: &Context, host: &HostName, keys: &[ObjectKey]) {
    for key in keys {
        if let Some(vm) = ctx.stores.vm(key) {
            ctx.event(&vm.object_ref(&()), EventType::Normal, "Placed", format!("placed on CatalystHost {host}")).await;
        }
    }
}

/// Which waiting VMs a change of a CatalystHost concerns. The VMs just added to its ledger,
/// to adopt their reservation; and every VM still waiting for a host, but only when the host
/// may take more than before: it is new, its spec or labels changed (what the planner reads of
/// it), or its ledger let a VM go. A ledger that grew, or a status the host's reconcile wrote,
/// makes no room, so the waiting VMs sleep through it: waking them all at every change of every
/// host made convergence grow with the square of the layout.
#[derive(Default)]
pub struct Vacancies(PerObject<HostRoom>);

/// What was last seen of a host: the digest of what the planner reads of it, and its ledger.
struct HostRoom {
    shape: u64,
    ledger: BTreeSet<String>,
}

impl HostRoom {
    fn of(host: &CatalystHost) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&host.metadata.generation, &host.metadata.labels).hash(&mut hasher);
        Self { shape: hasher.finish(), ledger: host.status.iter().flat_map(|s| s.vms.iter().cloned()).collect() }
    }
}

/// The kind the rooms are kept under in their [`PerObject`] map.
const HOST: &str = "CatalystHost";

impl Vacancies {
    /// Remembers the hosts as the synced cache has them, before any controller runs, so that
    /// the first list hands on nothing new (every VM is reconciled once then anyway).
    pub fn seed<'a>(&self, hosts: impl IntoIterator<Item = &'a CatalystHost>) {
        let mut rooms = self.0.lock();
        for host in hosts {
            rooms.insert(object_id(HOST, &key_of(host)), HostRoom::of(host));
        }
    }

    /// Forgets the hosts `exists` no longer finds.
    pub fn prune(&self, exists: impl Fn(&str, &ObjectKey) -> bool) {
        self.0.prune(exists);
    }

    /// The VMs to wake for this version of `host`; `waiting` lists the VMs on no host yet, and
    /// is asked only when the host may take more than before.
    pub fn woken(&self, host: &CatalystHost, waiting: impl FnOnce() -> Vec<ObjectKey>) -> Vec<ObjectKey> {
        let now = HostRoom::of(host);
        let id = object_id(HOST, &key_of(host));
        let mut rooms = self.0.lock();
        let added: Option<Vec<String>> = match rooms.get(&id) {
            Some(before) if before.shape == now.shape && before.ledger.is_subset(&now.ledger) => {
                Some(now.ledger.difference(&before.ledger).cloned().collect())
            }
            _ => None,
        };
        rooms.insert(id, now);
        drop(rooms);
        match added {
            Some(entries) => entries.iter().filter_map(|entry| vm_key(entry)).collect(),
            None => waiting(),
        }
    }
}

/// A reservation written by a batch (its `Placed` event was published then) or before a crash.
fn adopt(host: HostName) -> Placement {
    tracing::debug!(%host, "adopting the reservation found in the host's ledger");
    Placement::On(host)
}

/// The VMs the plan places that hold no place yet, by host: the valid ones not being deleted
/// (the reconciled VM is among them).
fn waiting_placements(ctx: &Context, input: &PlanInput, plan: &planner::Plan) -> BTreeMap<HostName, Vec<ObjectKey>> {
    let guards = ctx.stores.vms.state();
    let deleting: std::collections::HashSet<ObjectKey> =
        valid(&guards).filter(|vm| vm.metadata.deletion_timestamp.is_some()).map(key_of).collect();
    let waiting: std::collections::HashSet<&ObjectKey> =
        input.vms.iter().filter(|m| m.placed.is_none()).map(|m| &m.key).collect();
    let mut batches: BTreeMap<HostName, Vec<ObjectKey>> = BTreeMap::new();
    for placed in &plan.vms {
        if let Some(host) = &placed.host
            && waiting.contains(&placed.vm)
            && !deleting.contains(&placed.vm)
        {
            batches.entry(HostName::from(host.as_str())).or_default().push(placed.vm.clone());
        }
    }
    batches
}

/// The host each VM holds a place on: its status, or a ledger entry not yet copied there. A
/// moving VM is planned where it goes (the host it leaves takes no new VMs).
fn placements(hosts: &[&CatalystHost], vms: &[&CatalystVM]) -> HashMap<ObjectKey, HostName> {
    let mut placed: HashMap<ObjectKey, HostName> = HashMap::new();
    for host in hosts {
        for key in ledger_of(host) {
            placed.insert(key, HostName::of(host));
        }
    }
    for vm in vms {
        let status = vm.status.as_ref();
        if let Some(host) = status.and_then(|s| s.moving.as_ref().map(|m| m.to.clone()).or_else(|| s.host.clone())) {
            placed.insert(key_of(*vm), HostName::from(host));
        }
    }
    placed
}

/// A host as the planner sees it: one whose node is fenced takes no new VMs.
fn host_model(host: &CatalystHost, ctx: &Context) -> HostModel {
    let mut model = HostModel::from_host(host);
    if ctx.stores.fenced(host) {
        model.schedulable = false;
    }
    model
}

/// The layout the caches hold, every VM where it runs (or goes).
pub fn cached_input(ctx: &Context) -> PlanInput {
    let host_guards = ctx.stores.hosts();
    let hosts: Vec<&CatalystHost> = valid(&host_guards).collect();
    let vm_guards = ctx.stores.vms.state();
    let vms: Vec<&CatalystVM> = valid(&vm_guards).collect();
    layout(ctx, &hosts, &vms)
}

/// The layout as the planner sees it: `hosts`, and the VMs of the store with `current` (the
/// object being reconciled) in place of its possibly older copy.
fn plan_input(ctx: &Context, current: &CatalystVM, hosts: &[&CatalystHost], unseen: &[CatalystVM]) -> PlanInput {
    let vm_guards = ctx.stores.vms.state();
    let current_key = key_of(current);
    let mut vms: Vec<&CatalystVM> = valid(&vm_guards).filter(|vm| key_of(*vm) != current_key).collect();
    vms.push(current);
    vms.extend(unseen.iter().filter(|vm| key_of(*vm) != current_key));
    layout(ctx, hosts, &vms)
}

/// These hosts and VMs as the planner reads them, each VM where it holds a place.
fn layout(ctx: &Context, hosts: &[&CatalystHost], vms: &[&CatalystVM]) -> PlanInput {
    let placed = placements(hosts, vms);
    PlanInput {
        hosts: hosts.iter().map(|h| host_model(h, ctx)).collect(),
        vms: vms
            .iter()
            .map(|vm| {
                let mut model = VmModel::from_vm(vm, &ctx.overhead);
                model.placed = placed.get(&model.key).map(ToString::to_string);
                model
            })
            .collect(),
        groups: Vec::new(),
    }
}

#[derive(Debug)]
enum Reservation {
    /// The ledger changed since it was listed: plan again.
    Lost,
    /// The ledger no longer has room.
    NoRoom,
    Failed(kube::Error),
}

/// What each planned VM takes of a host: made once per turn for all its reservations, not once
/// per host (at 10,000 VMs on 1,000 hosts that was 10 million insertions a turn). The plan's
/// VMs include every ledger entry (those the cache had not seen were read).
fn demands(input: &PlanInput) -> HashMap<&ObjectKey, Res> {
    input.vms.iter().map(|m| (&m.key, m.demand)).collect()
}

/// Appends `keys` to the ledger of `host` (as just listed) with a compare-and-swap on the
/// resourceVersion it was listed at, after checking its ledger still leaves room for them.
async fn reserve(
    ctx: &Context,
    mut host: CatalystHost,
    keys: &[ObjectKey],
    demands: &HashMap<&ObjectKey, Res>,
) -> Result<(), Reservation> {
    let held: Vec<ObjectKey> = ledger_of(&host).collect();
    let new: Vec<&ObjectKey> = keys.iter().filter(|k| !held.contains(k)).collect();
    if new.is_empty() {
        return Ok(());
    }
    let used = held.iter().chain(new.iter().copied()).filter_map(|k| demands.get(k)).copied();
    if !HostModel::from_host(&host).allocatable.covers(&used.fold(Res::default(), |sum, d| sum + d)) {
        return Err(Reservation::NoRoom);
    }
    let mut status = host.status.clone().unwrap_or_default();
    status.vms.extend(new.iter().map(ToString::to_string));
    status.vms.sort();
    host.status = Some(status);
    let api: Api<CatalystHost> = Api::all(ctx.client.clone());
    match api.replace_status(&host.name_any(), &PostParams::default(), &host).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 409 => Err(Reservation::Lost),
        Err(source) => Err(Reservation::Failed(source)),
    }
}

/// [`planner::plan_within`] on tokio's blocking threads: a search may take its whole budget,
/// which would hold an async worker and what waits on it (reconciles, watches, the lease's
/// renewal). Where the operator has one CPU, tokio runs one worker.
async fn plan_aside(input: PlanInput, budget: planner::SearchBudget) -> (PlanInput, planner::Plan) {
    let planning = tokio::task::spawn_blocking(move || {
        let plan = planner::plan_within(&input, budget);
        (input, plan)
    });
    planning.await.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
}

/// Issue 22: writes a moving VM into the ledger of the host it goes to, after checking, as the
/// planner checks a pinned VM, that the host as it is now (its ledger read afresh) still takes
/// it, NUMA cells included. False when it no longer does; a lost compare-and-swap is a race,
/// tried again.
pub async fn reserve_move(vm: &CatalystVM, host: &HostName, ctx: &Context) -> Result<bool, Error> {
    let key = key_of(vm);
    let failed = |source| Error::ReserveHost { host: host.clone(), source };
    let Some(fresh) = Api::<CatalystHost>::all(ctx.client.clone()).get_opt(host.as_str()).await.map_err(failed)? else {
        return Ok(false);
    };
    let ledger: Vec<ObjectKey> = ledger_of(&fresh).collect();
    if ledger.contains(&key) {
        return Ok(true);
    }
    let (unseen, _) = read_unseen(ctx, &ledger).await?;
    let mut input = plan_input(ctx, vm, &[&fresh], &unseen);
    input.hosts[0].schedulable = true;
    input.vms.retain(|m| m.key == key || ledger.contains(&m.key));
    for model in &mut input.vms {
        model.placed = (model.key != key).then(|| host.to_string());
        if model.key == key {
            model.pinned = Some(host.to_string());
        }
    }
    let (input, plan) = plan_aside(input, ctx.search).await;
    if plan.vms.iter().any(|p| p.vm == key && p.host.is_none()) {
        return Ok(false);
    }
    match reserve(ctx, fresh, std::slice::from_ref(&key), &demands(&input)).await {
        Ok(()) => Ok(true),
        Err(Reservation::NoRoom) => Ok(false),
        Err(Reservation::Lost) => Err(Error::PlacementRace { vm: key, host: host.clone() }),
        Err(Reservation::Failed(source)) => Err(Error::ReserveHost { host: host.clone(), source }),
    }
}

/// Takes `key` out of `host`'s ledger (read afresh, written with a compare-and-swap); nothing
/// when the host or the entry is gone.
pub async fn release(ctx: &Context, host: &HostName, key: &ObjectKey) -> Result<(), Error> {
    let api: Api<CatalystHost> = Api::all(ctx.client.clone());
    let failed = |source| Error::ReleaseHost { vm: key.clone(), host: host.clone(), source };
    let Some(mut fresh) = api.get_opt(host.as_str()).await.map_err(failed)? else { return Ok(()) };
    let mut status = fresh.status.clone().unwrap_or_default();
    let entry = key.to_string();
    if !status.vms.contains(&entry) {
        return Ok(());
    }
    status.vms.retain(|k| *k != entry);
    fresh.status = Some(status);
    match api.replace_status(host.as_str(), &PostParams::default(), &fresh).await {
        Ok(_) => {
            tracing::info!(%host, vm = %key, "released");
            Ok(())
        }
        Err(kube::Error::Api(response)) if response.code == 409 => {
            Err(Error::PlacementRace { vm: key.clone(), host: host.clone() })
        }
        Err(source) => Err(failed(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, generation: i64, ledger: &[&str]) -> CatalystHost {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost",
            "metadata": {"name": name, "generation": generation},
            "spec": {"nodeName": name, "capacity": {"cpu": 64, "memory": "256Gi"}},
            "status": {"vms": ledger, "allocated": {"cpu": ledger.len() as u32, "memory": "0"}}
        }))
        .unwrap()
    }

    fn waiting() -> Vec<ObjectKey> {
        vec![ObjectKey::namespaced("team", "waiting")]
    }

    fn names(woken: Vec<ObjectKey>) -> Vec<String> {
        woken.iter().map(|key| key.name().to_string()).collect()
    }

    /// Only a change that may make room wakes the waiting VMs; a ledger that grew wakes the VMs
    /// it took, and a status write nothing.
    #[test]
    fn waiting_vms_wake_only_when_a_host_may_take_more() {
        let vacancies = Vacancies::default();
        vacancies.seed([&host("a", 1, &["team/vm-1"])]);
        assert!(vacancies.woken(&host("a", 1, &["team/vm-1"]), waiting).is_empty(), "the first list");
        assert_eq!(names(vacancies.woken(&host("a", 1, &["team/vm-1", "team/vm-2"]), waiting)), ["vm-2"]);
        let mut status_only = host("a", 1, &["team/vm-1", "team/vm-2"]);
        status_only.status.as_mut().unwrap().allocated = None;
        assert!(vacancies.woken(&status_only, waiting).is_empty(), "a status write");
        assert_eq!(names(vacancies.woken(&host("a", 1, &["team/vm-2"]), waiting)), ["waiting"], "a VM let go");
        assert_eq!(names(vacancies.woken(&host("a", 2, &["team/vm-2"]), waiting)), ["waiting"], "a new spec");
        assert_eq!(names(vacancies.woken(&host("b", 1, &[]), waiting)), ["waiting"], "a new host");
        vacancies.prune(|kind, key| (kind, key) == (HOST, &ObjectKey::cluster_scoped("b")));
        assert_eq!(names(vacancies.woken(&host("a", 2, &["team/vm-2"]), waiting)), ["waiting"], "forgotten");
    }
}
