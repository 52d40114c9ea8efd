//! Wiring: the caches, the three controllers and what wakes each of them.

use super::apply::{Follows, Known};
use super::index;
use super::index::Follower;
use super::{Context, Stores, approval, error_policy, group, host, key_of, object_ref, placement, valid, vm, vm_key};
use crate::metrics::Metrics;
use catalyst_api::kubevirt::VirtualMachine;
use catalyst_api::{CatalystHost, CatalystNodeReport, CatalystVM, ServiceGroup};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::planner::Overhead;
use catalyst_core::pool::HostPool;
use catalyst_core::render::labels;
use catalyst_core::validation::vm_of_node;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the operator watches and how it models VMs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Namespaces of the CatalystVMs and ServiceGroups to manage; all when empty. One is
    /// watched on its own; several are watched cluster-wide and the others left alone.
    pub namespaces: Vec<String>,
    /// The CatalystHosts this operator places VMs on, reports on and watches; all by default.
    pub host_pool: HostPool,
    pub overhead: Overhead,
    /// This replica's name in the events it publishes (its pod name, in a cluster).
    pub instance: Option<String>,
    /// The exact search's budget per placement.
    pub search: catalyst_core::planner::SearchBudget,
    /// Objects each controller reconciles at once; 0 is unbounded.
    pub concurrency: u16,
    /// Each VM joins with a bootstrap token of its own, minted in `kube-system`.
    pub mint_join_tokens: bool,
}

/// The watch of the pool's hosts: the API server filters by the pool's selector.
fn pool_hosts(pool: &HostPool) -> watcher::Config {
    match pool.label_selector() {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    }
}

fn scoped<K>(client: &Client, namespaces: &[String]) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespaces {
        [one] => Api::namespaced(client.clone(), one),
        _ => Api::all(client.clone()),
    }
}

/// How often the backoff of objects that are gone is forgotten.
const PRUNE_BACKOFF: Duration = Duration::from_secs(300);

/// How many changes a controller may lag behind a shared watch before the watch waits for it.
const SHARED_BUFFER: usize = 1024;

/// One watch of a kind, shared: the cache every controller reads, and each changed (or deleted)
/// object handed to every controller the kind wakes.
///
/// Not kube-runtime's own shared streams (`store_shared`, `Writer::subscribe`): in kube-runtime
/// 5.0.0 they pass no deletions on, and a subscriber whose object was deleted before it read it
/// returns `Pending` without a wake-up (`src/reflector/dispatcher.rs`, `ReflectHandle::poll_next`),
/// which stalled the VM controller in this suite.
struct Shared<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    writer: Writer<K>,
    subscribers: Vec<mpsc::Sender<Change<K>>>,
    /// Kept current with the cache, before any controller hears of a change.
    followers: Vec<Arc<dyn index::Follower<K>>>,
}

/// A changed object, and whether the change deleted it.
struct Change<K> {
    object: Arc<K>,
    deleted: bool,
}

/// Which changes of a kind wake a controller.
enum Wake<K> {
    /// Every change, status included.
    AnyChange,
    /// A change of what the controller reads: the spec (generation), labels, annotations,
    /// finalizers, deletion. Not the status, which this operator writes itself: its own status
    /// writes, and a watch that lists again, wake nothing.
    SpecChange,
    /// A change of what this digest covers (and deletion).
    ChangeOf(fn(&K) -> u64),
}

/// The annotation `kubectl apply` (client-side, and Argo CD's default sync) keeps the whole
/// applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object as cached: without what no reconcile reads and what costs the most memory, its
/// managedFields (about half of a small object's metadata) and `kubectl apply`'s copy of it.
fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// What a CatalystNodeReport says, its heartbeat aside: an agent renews an unchanged report
/// every minute, which wakes nothing (whether a report is still believed is looked at again
/// when its heartbeat would run out).
fn report_digest(report: &CatalystNodeReport) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let spec = &report.spec;
    (&spec.allocatable_cpus, serde_json::to_string(&(&spec.numa, &spec.pods)).unwrap_or_default()).hash(&mut hasher);
    hasher.finish()
}

/// What a host's reconcile reads of a VM: its spec (generation), whether it is being deleted,
/// its phase, host and move, and its `Moving` condition (the evacuation's progress). The other
/// status writes (pinning, the node, what is left for groups) wake no host: at 10,000 VMs each
/// cost a reconcile of the VM's host that found nothing to do.
fn vm_placement_digest(vm: &DeserializeGuard<CatalystVM>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match &vm.0 {
        Ok(vm) => {
            let status = vm.status.as_ref();
            let moving = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == super::moves::MOVING));
            let read =
                (status.map(|s| (&s.phase, &s.host, &s.moving)), moving.map(|c| (&c.status, &c.reason, &c.message)));
            (vm.metadata.generation, vm.metadata.deletion_timestamp.is_some()).hash(&mut hasher);
            serde_json::to_string(&read).unwrap_or_default().hash(&mut hasher);
        }
        // A VM that cannot be read wakes its host at every version, as any change did.
        Err(_) => vm.meta().resource_version.hash(&mut hasher),
    }
    hasher.finish()
}

/// What [`Wake::SpecChange`] compares.
fn spec_digest(meta: &kube::core::ObjectMeta) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&meta.generation, &meta.labels, &meta.annotations, &meta.finalizers, meta.deletion_timestamp.is_some())
        .hash(&mut hasher);
    hasher.finish()
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn new() -> Self {
        let (store, writer) = reflector::store();
        Self { store, writer, subscribers: Vec::new(), followers: Vec::new() }
    }

    /// The kind's changed objects, for one more controller; taken before the watch starts, so
    /// that no controller misses the first list.
    fn subscribe(&mut self, wake: Wake<K>) -> impl Stream<Item = Arc<K>> + Send + use<K> {
        let (sender, receiver) = mpsc::channel(SHARED_BUFFER);
        self.subscribers.push(sender);
        let digest: Option<fn(&K) -> u64> = match wake {
            Wake::AnyChange => None,
            Wake::SpecChange => Some(|object: &K| spec_digest(object.meta())),
            Wake::ChangeOf(digest) => Some(digest),
        };
        let mut seen: HashMap<(Option<String>, Option<String>), u64> = HashMap::new();
        futures::stream::unfold(receiver, |mut receiver| async move { Some((receiver.recv().await?, receiver)) })
            .filter_map(move |change: Change<K>| {
                let meta = change.object.meta();
                let key = (meta.namespace.clone(), meta.name.clone());
                let wakes = match digest {
                    None => true,
                    Some(_) if change.deleted => {
                        seen.remove(&key);
                        true
                    }
                    Some(digest) => {
                        let digest = digest(&change.object);
                        seen.insert(key, digest) != Some(digest)
                    }
                };
                std::future::ready(wakes.then_some(change.object))
            })
    }

    /// The watch that fills the cache and feeds the subscribers; it waits for a subscriber
    /// whose buffer is full. The first list is handed on once it is whole (as kube-runtime's
    /// dispatcher does), because a controller drops a request for an object its cache lacks.
    fn feed(self, api: Api<K>, config: watcher::Config) -> impl Stream<Item = ()> + Send {
        let subscribers = Arc::new(self.subscribers);
        let (store, followers) = (self.store, Arc::new(self.followers));
        let trimmed = watcher(api, config).modify(trim);
        reflector::reflector(self.writer, trimmed).default_backoff().then(move |event| {
            let (subscribers, store, followers) = (subscribers.clone(), store.clone(), followers.clone());
            async move {
                let (changed, deleted) = match event {
                    Ok(watcher::Event::Apply(object)) => {
                        followers.iter().for_each(|f| f.applied(&object));
                        (vec![Arc::new(object)], false)
                    }
                    Ok(watcher::Event::Delete(object)) => {
                        followers.iter().for_each(|f| f.deleted(&object));
                        (vec![Arc::new(object)], true)
                    }
                    Ok(watcher::Event::InitDone) => {
                        let all = store.state();
                        followers.iter().for_each(|f| f.relisted(&all));
                        (all, false)
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => (Vec::new(), false),
                    Err(error) => {
                        tracing::warn!(%error, "a watch failed; retrying with backoff");
                        (Vec::new(), false)
                    }
                };
                for object in changed {
                    for subscriber in subscribers.iter() {
                        // A controller that has stopped no longer listens.
                        let _ = subscriber.send(Change { object: object.clone(), deleted }).await;
                    }
                }
            }
        })
    }
}

/// Owned children by metadata only: a change wakes the owner; the reconciler reads a child's
/// body only when it must compare it, so no Secret data or spec sits in memory. Every version
/// seen (or deletion) is reported to `known`, so a child known to be current stops being known
/// the moment it changes.
fn children<K>(
    client: &Client,
    namespaces: &[String],
    known: Arc<Known>,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + use<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let managed = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    let kind = K::kind(&Default::default()).into_owned();
    let follows = Follows { known: known.clone(), kind: kind.clone() };
    watcher(scoped::<PartialObjectMeta<K>>(client, namespaces), managed)
        .default_backoff()
        .inspect_ok(move |event| match event {
            watcher::Event::Apply(child) | watcher::Event::InitApply(child) => follows.applied(child),
            watcher::Event::Delete(child) => follows.deleted(child),
            // A relist reports each child as it goes; the kind counts as listed once it ends.
            watcher::Event::InitDone => follows.known.listed(&follows.kind, None),
            watcher::Event::Init => {}
        })
        .touched_objects()
        // The echo of the operator's own apply wakes no owner: at 10,000 VMs and groups these
        // echoes were a reconcile of each owner per child, one that found nothing to do. A
        // deletion or another writer's version is not an echo (the step above has forgotten
        // the version by then), and an echo that outruns the apply's response still wakes it.
        .try_filter(move |child| futures::future::ready(!known.echoes(&kind, child)))
}

/// Runs the three controllers until SIGTERM or SIGINT, once every cache has synced; each kind
/// is watched once and shared. `ready` is called once the caches have synced.
pub async fn run(client: Client, config: Config, metrics: Arc<Metrics>, ready: impl FnOnce()) {
    let ns = &config.namespaces;
    let mut hosts = Shared::<DeserializeGuard<CatalystHost>>::new();
    let mut vms = Shared::<DeserializeGuard<CatalystVM>>::new();
    let mut groups = Shared::<DeserializeGuard<ServiceGroup>>::new();
    let groups_by_vm = Arc::new(index::GroupsByVm::groups());
    groups.followers.push(groups_by_vm.clone());
    let vms_by_host = Arc::new(index::VmsByHost::vms());
    vms.followers.push(vms_by_host.clone());
    let hosts_by_ledger = Arc::new(index::HostsByLedger::ledgers());
    hosts.followers.push(hosts_by_ledger.clone());
    let mut nodes = Shared::<Node>::new();
    let mut reports = Shared::<CatalystNodeReport>::new();
    // One watch of every Secret's metadata: the cloud-init children and the join Secrets.
    let mut secrets = Shared::<PartialObjectMeta<Secret>>::new();
    let vms_by_join_secret = Arc::new(index::VmsByJoinSecret::join_secrets());
    vms.followers.push(vms_by_join_secret.clone());
    // KubeVirt's launcher pods, by metadata: which pod in a node's report is which VM's.
    let mut launchers = Shared::<PartialObjectMeta<Pod>>::new();
    let launchers_by_vm = Arc::new(index::LaunchersByVm::launchers());
    launchers.followers.push(launchers_by_vm.clone());
    // The bootstrap tokens this operator minted, by metadata, in kube-system.
    let mut tokens = config.mint_join_tokens.then(Shared::<PartialObjectMeta<Secret>>::new);
    let stores = Stores {
        hosts: hosts.store.clone(),
        vms: vms.store.clone(),
        groups: groups.store.clone(),
        nodes: nodes.store.clone(),
        reports: reports.store.clone(),
        secrets: secrets.store.clone(),
        groups_by_vm: groups_by_vm.clone(),
        vms_by_host: vms_by_host.clone(),
        hosts_by_ledger,
        launcher_pods: launchers.store.clone(),
        launchers: launchers_by_vm,
        tokens: tokens.as_ref().map(|t| t.store.clone()),
    };
    let mut ctx = Context::new(client.clone(), stores.clone(), config.overhead, config.instance.clone());
    ctx.metrics = metrics;
    ctx.namespaces = config.namespaces.clone();
    ctx.host_pool = config.host_pool.clone();
    ctx.search = config.search;
    ctx.mint_join_tokens = config.mint_join_tokens;
    secrets.followers.push(Arc::new(Follows { known: ctx.known.clone(), kind: "Secret".into() }));
    ctx.read_server_version().await;
    let ctx = Arc::new(ctx);

    let (groups_of_vm, hosts_of_node) = (groups_by_vm.clone(), stores.hosts.clone());
    let vacancies = Arc::new(placement::Vacancies::default());
    let waiting = vms_by_host.clone();
    let settings = kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let known = ctx.known.clone();
    let vm_controller = Controller::for_shared_stream(vms.subscribe(Wake::SpecChange), stores.vms.clone())
        .with_config(settings.clone())
        .owns_stream(children::<VirtualMachine>(&client, ns, ctx.known.clone()))
        // A cloud-init Secret changed or deleted by hand wakes its VM; a join Secret, the VMs
        // that name it (one that appears lets a waiting VM go on).
        .watches_shared_stream(secrets.subscribe(Wake::AnyChange), move |secret| {
            // The echo of the operator's own apply of a cloud-init Secret wakes nobody (its
            // followers have updated `Known` before this runs, so a deletion still wakes).
            if known.echoes("Secret", secret.as_ref()) {
                return Vec::new();
            }
            let owner =
                secret.owner_references().iter().filter(|o| o.controller == Some(true) && o.kind == "CatalystVM");
            let owner = owner.map(|o| ObjectKey::beside(secret.as_ref(), &o.name));
            let naming = vms_by_join_secret.get(&key_of(secret.as_ref()));
            refs(owner.chain(naming))
        })
        // Room made on a host may let a waiting VM in; a VM just put in a ledger adopts it; a
        // drained host's evacuation lets the VMs it names move.
        .watches_shared_stream(hosts.subscribe(Wake::AnyChange), {
            let vacancies = vacancies.clone();
            move |host| {
                let Ok(host) = &host.0 else { return Vec::new() };
                let evacuation = host.status.as_ref().and_then(|s| s.evacuation.as_ref());
                let moving = evacuation.into_iter().flat_map(|e| &e.moving).filter_map(|m| vm_key(&m.vm));
                let mut woken = vacancies.woken(host, || waiting.get(&None));
                woken.extend(moving);
                refs(woken)
            }
        })
        // What a VM's node still offers (status.available) changes with its ServiceGroups' specs.
        .watches_shared_stream(groups.subscribe(Wake::SpecChange), |group| {
            let group = group.0.as_ref().ok()?;
            Some(ObjectRef::new(&group.spec.vm).within(&group.namespace()?))
        })
        // A VM's node joining or going NotReady changes the VM's status (it is named after the
        // VM); a host's node going NotReady, whether its VMs' reports are believed.
        .watches_shared_stream(nodes.subscribe(Wake::AnyChange), {
            let (hosts, vms_by_host) = (stores.hosts.clone(), vms_by_host.clone());
            move |node| {
                let name = node.name_any();
                refs(vm_of_node(&name).into_iter().chain(vms_on_hosts(&vms_by_host, hosts_on_node(&hosts, &name))))
            }
        })
        // A host's report says which cores its VMs' launchers hold.
        .watches_shared_stream(reports.subscribe(Wake::ChangeOf(report_digest)), {
            let (hosts, vms_by_host) = (stores.hosts.clone(), vms_by_host.clone());
            move |report| refs(vms_on_hosts(&vms_by_host, hosts_on_node(&hosts, &report.name_any())))
        })
        // A token gone (the token cleaner removed it) is made again while the VM joins.
        .watches_shared_stream(
            match tokens.as_mut() {
                Some(tokens) => tokens.subscribe(Wake::AnyChange).boxed(),
                None => futures::stream::empty().boxed(),
            },
            |token| Some(object_ref(&vm_of_node(token.labels().get(labels::JOIN_TOKEN_OF)?)?)),
        )
        .shutdown_on_signal()
        .run(vm::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move { log("CatalystVM", result) });

    let group_controller = Controller::for_shared_stream(groups.subscribe(Wake::SpecChange), stores.groups.clone())
        .with_config(settings.clone())
        .owns_stream(children::<StatefulSet>(&client, ns, ctx.known.clone()))
        .owns_stream(children::<Service>(&client, ns, ctx.known.clone()))
        // A group renders from its VM's spec and name, never from its status.
        .watches_shared_stream(vms.subscribe(Wake::SpecChange), move |vm| refs(groups_of_vm.get(&key_of(vm.as_ref()))))
        // A VM-node going NotReady makes its replicas' verdicts Unknown.
        .watches_shared_stream(nodes.subscribe(Wake::AnyChange), {
            let groups_by_vm = groups_by_vm.clone();
            move |node| {
                let Some(vm) = vm_of_node(&node.name_any()) else { return Vec::new() };
                refs(groups_by_vm.get(&vm))
            }
        })
        // A VM-node's report says which cores the replicas on it hold.
        .watches_shared_stream(reports.subscribe(Wake::ChangeOf(report_digest)), {
            let groups_by_vm = groups_by_vm.clone();
            move |report| {
                let Some(vm) = vm_of_node(&report.name_any()) else { return Vec::new() };
                refs(groups_by_vm.get(&vm))
            }
        })
        .shutdown_on_signal()
        .run(group::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move { log("ServiceGroup", result) });

    let host_controller = Controller::for_shared_stream(hosts.subscribe(Wake::AnyChange), stores.hosts.clone())
        .with_config(settings)
        // A VM's placement (its status) changes its host's figures, and a move those of the
        // host it goes to.
        .watches_shared_stream(vms.subscribe(Wake::ChangeOf(vm_placement_digest)), |vm| {
            let status = vm.0.as_ref().ok().and_then(|vm| vm.status.as_ref());
            let hosts = status.into_iter().flat_map(|s| s.host.iter().chain(s.moving.iter().map(|m| &m.to)));
            hosts.map(|host| ObjectRef::new(host)).collect::<Vec<_>>()
        })
        .watches_shared_stream(nodes.subscribe(Wake::AnyChange), {
            let hosts = hosts_of_node.clone();
            move |node| hosts_on_node(&hosts, &node.name_any())
        })
        // Its node's report is its core map.
        .watches_shared_stream(reports.subscribe(Wake::ChangeOf(report_digest)), move |report| {
            hosts_on_node(&hosts_of_node, &report.name_any())
        })
        .shutdown_on_signal()
        .run(host::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move { log("CatalystHost", result) });

    // With minted tokens, the kubelet client certificates of VM-nodes, approved by the operator.
    let approvals = async {
        if !config.mint_join_tokens {
            return;
        }
        let signer = format!("spec.signerName={}", catalyst_core::kubelet_csr::KUBELET_CLIENT_SIGNER);
        let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
        Controller::new(csrs, watcher::Config::default().fields(&signer))
            .shutdown_on_signal()
            .run(approval::reconcile, approval::error_policy, ctx.clone())
            .for_each(|result| async move { log("CertificateSigningRequest", result) })
            .await;
    };

    let mut feeds = vec![
        hosts.feed(Api::all(client.clone()), pool_hosts(&config.host_pool)).boxed(),
        vms.feed(scoped(&client, ns), watcher::Config::default()).boxed(),
        groups.feed(scoped(&client, ns), watcher::Config::default()).boxed(),
        nodes.feed(Api::all(client.clone()), watcher::Config::default()).boxed(),
        reports.feed(Api::all(client.clone()), watcher::Config::default()).boxed(),
        secrets.feed(scoped(&client, ns), watcher::Config::default()).boxed(),
        launchers.feed(scoped(&client, ns), watcher::Config::default().labels("kubevirt.io=virt-launcher")).boxed(),
    ];
    if let Some(tokens) = tokens {
        let minted = format!("{},{}={}", labels::JOIN_TOKEN_OF, labels::MANAGED_BY, labels::MANAGER);
        let namespace = catalyst_core::render::token::TOKEN_NAMESPACE;
        feeds.push(
            tokens.feed(Api::namespaced(client.clone(), namespace), watcher::Config::default().labels(&minted)).boxed(),
        );
    }
    let feeds = futures::stream::select_all(feeds);
    let feeding = tokio::spawn(feeds.for_each(|()| async {}));
    // No placement is decided on a partial view of the hosts' ledgers. A store is whole as
    // soon as its first list is, even while its feed waits for a controller not yet running.
    if !stores.synced().await {
        feeding.abort();
        return;
    }
    vacancies.seed(valid(&stores.hosts()));
    ready();
    tracing::info!("caches synced; reconciling");
    let pruning = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_BACKOFF, PRUNE_BACKOFF);
            loop {
                every.tick().await;
                ctx.read_server_version().await;
                ctx.backoff.failures.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.written.last.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.events.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.join_secrets.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.tokens.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.signed.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.repairs.prune(|kind, key| ctx.stores.contains(kind, key));
                vacancies.prune(|kind, key| ctx.stores.contains(kind, key));
                ctx.metrics.forget_hosts_except(|host| ctx.stores.host(host).is_some());
                ctx.metrics.forget_verdicts(|kind, key| ctx.stores.contains(kind, key));
            }
        })
    };
    futures::join!(vm_controller, group_controller, host_controller, approvals);
    pruning.abort();
    feeding.abort();
    tracing::info!("controllers stopped");
}

/// References to the objects of these keys, as an index gives them.
fn refs<K>(keys: impl IntoIterator<Item = ObjectKey>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    keys.into_iter().map(|key| object_ref(&key)).collect()
}

/// The valid hosts that are this node.
fn hosts_on_node(
    hosts: &Store<DeserializeGuard<CatalystHost>>,
    node: &str,
) -> Vec<ObjectRef<DeserializeGuard<CatalystHost>>> {
    valid(&hosts.state()).filter(|h| h.spec.node_name == node).map(|h| ObjectRef::new(&h.name_any())).collect()
}

/// The VMs whose status names one of these hosts.
fn vms_on_hosts(
    vms_by_host: &index::VmsByHost,
    hosts: Vec<ObjectRef<DeserializeGuard<CatalystHost>>>,
) -> impl Iterator<Item = ObjectKey> {
    hosts.into_iter().flat_map(|host| vms_by_host.get(&Some(HostName::from(host.name))))
}

fn log<T: Debug, E: std::fmt::Display>(kind: &str, result: Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(kind, ?object, "reconciled"),
        Err(error) => tracing::debug!(kind, %error, "controller event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn vm(status: serde_json::Value) -> DeserializeGuard<CatalystVM> {
        DeserializeGuard(Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "team", "generation": 1},
            "spec": {"cpu": 2, "memory": "4Gi", "bootDisk": {"containerDisk": {"image": "img"}}},
            "status": status
        }))
        .unwrap()))
    }

    /// A host is woken by what its reconcile reads of a VM, and by nothing else the VM's status says.
    #[test]
    fn a_vms_host_wakes_for_its_placement_not_for_every_status_write() {
        let placed = serde_json::json!({"host": "h1", "phase": "Provisioning"});
        let digest = |status| vm_placement_digest(&vm(status));
        let base = digest(placed.clone());
        let mut pinned = placed.clone();
        pinned["hostCpus"] = "2-5".into();
        pinned["nodeName"] = "a.team".into();
        pinned["conditions"] = serde_json::json!([{"type": "Pinned", "status": "True", "reason": "Pinned",
            "message": "", "lastTransitionTime": "2026-12-05T00:00:00Z"}]);
        assert_eq!(digest(pinned), base, "pinning, the node and other conditions wake no host");
        assert_ne!(digest(serde_json::json!({"host": "h2", "phase": "Provisioning"})), base);
        assert_ne!(digest(serde_json::json!({"host": "h1", "phase": "Running"})), base);
        let mut moving = placed.clone();
        moving["conditions"] = serde_json::json!([{"type": "Moving", "status": "True", "reason": "Migrating",
            "message": "to h2", "lastTransitionTime": "2026-12-05T00:00:00Z"}]);
        assert_ne!(digest(moving), base, "an evacuation reads the Moving condition");
        assert_ne!(digest(serde_json::json!(null)), base);
    }

    fn config_map(generation: i64, status: &str) -> Arc<ConfigMap> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "team", "generation": generation},
                "data": {"status": status}
            }))
            .unwrap(),
        )
    }

    /// A status-only change (here: data, with the generation unchanged) wakes a controller that
    /// listens for every change, not one that listens for spec changes; a deletion wakes both.
    #[tokio::test]
    async fn a_spec_listener_sleeps_through_status_changes_but_hears_deletions() {
        let mut shared = Shared::<ConfigMap>::new();
        let spec = shared.subscribe(Wake::SpecChange);
        let any = shared.subscribe(Wake::AnyChange);
        let changes = [(1, "a", false), (1, "b", false), (2, "b", false), (2, "b", true)];
        for (generation, status, deleted) in changes {
            for subscriber in &shared.subscribers {
                subscriber.send(Change { object: config_map(generation, status), deleted }).await.unwrap();
            }
        }
        shared.subscribers.clear();
        let heard = |stream: Vec<Arc<ConfigMap>>| -> Vec<(i64, String)> {
            stream
                .iter()
                .map(|c| (c.metadata.generation.unwrap(), c.data.as_ref().unwrap()["status"].clone()))
                .collect()
        };
        let spec = heard(spec.collect().await);
        let any = heard(any.collect().await);
        assert_eq!(spec, [(1, "a".into()), (2, "b".into()), (2, "b".into())]);
        assert_eq!(any.len(), 4);
    }

    /// What the API server writes into every object's metadata for server-side apply, and
    /// `kubectl apply`'s copy of the object, which no reconcile reads, stay out of the cache.
    #[tokio::test]
    async fn the_cache_keeps_no_managed_fields_and_no_last_applied_copy() {
        let emulator = apiserver_emulator::Emulator::start(None).await.unwrap();
        let config = kube::config::Kubeconfig::from_yaml(&emulator.kubeconfig()).unwrap();
        let options = kube::config::KubeConfigOptions::default();
        let client = Client::try_from(kube::Config::from_custom_kubeconfig(config, &options).await.unwrap()).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let managed = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1"}],
                         "annotations": {LAST_APPLIED: "{\"data\":{\"k\":\"v\"}}", "kept": "yes"}},
            "data": {"k": "v"}
        }))
        .unwrap();
        let created = api.create(&Default::default(), &managed).await.unwrap();
        assert!(created.metadata.managed_fields.is_some(), "the server returned them");
        let shared = Shared::<ConfigMap>::new();
        let store = shared.store.clone();
        let feeding = tokio::spawn(shared.feed(api, watcher::Config::default()).for_each(|()| async {}));
        store.wait_until_ready().await.unwrap();
        let cached = store.get(&ObjectRef::new("a").within("default")).unwrap();
        assert_eq!(cached.data.as_ref().unwrap()["k"], "v");
        assert!(cached.metadata.managed_fields.is_none(), "{cached:?}");
        assert_eq!(cached.annotations().keys().collect::<Vec<_>>(), ["kept"]);
        feeding.abort();
    }
}
