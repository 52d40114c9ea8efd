//! Everything a reconcile reads besides its object: the caches, the client, what the operator
//! remembers per object, and the running of one reconcile with its span, metrics and backoff.

use super::{Error, apply, events, index};
use crate::metrics::{ErrorLabels, Metrics};
use crate::per_object::{PerObject, object_id};
use catalyst_api::{CatalystHost, CatalystNodeReport, CatalystVM, ServiceGroup};
use catalyst_core::key::{HostName, ObjectKey};
use catalyst_core::planner::Overhead;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The taint of a fenced node (kubernetes `pkg/apis/core/types.go`, `TaintNodeOutOfService`;
/// non-graceful node shutdown, GA in v1.28).
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Name the operator reports events as.
pub const CONTROLLER_NAME: &str = "catalyst-operator";

/// Caches the operator reads other objects from; the truth stays in the API server.
#[derive(Clone)]
pub struct Stores {
    pub hosts: Store<DeserializeGuard<CatalystHost>>,
    pub vms: Store<DeserializeGuard<CatalystVM>>,
    pub groups: Store<DeserializeGuard<ServiceGroup>>,
    pub nodes: Store<Node>,
    /// The nodes' CatalystNodeReports, by node name.
    pub reports: Store<CatalystNodeReport>,
    /// Every Secret's metadata, never its data: the cloud-init children, and the join Secrets.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// The groups of each VM, kept beside `groups` by the same watch.
    pub groups_by_vm: Arc<index::GroupsByVm>,
    /// The VMs on each host (by their status), kept beside `vms` by the same watch.
    pub vms_by_host: Arc<index::VmsByHost>,
    /// The host whose ledger holds each VM, kept beside `hosts` by the same watch.
    pub hosts_by_ledger: Arc<index::HostsByLedger>,
    /// KubeVirt's launcher pods, by metadata.
    pub launcher_pods: Store<PartialObjectMeta<k8s_openapi::api::core::v1::Pod>>,
    /// The launcher pods of each VM, kept beside `launcher_pods` by the same watch.
    pub launchers: Arc<index::LaunchersByVm>,
    /// The bootstrap tokens this operator minted in `kube-system`, by metadata (their label
    /// names the VM node each is for; an annotation, when it expires); `None` when it mints none.
    pub tokens: Option<Store<PartialObjectMeta<Secret>>>,
}

impl Stores {
    /// Waits until every cache has synced; false when one never will (its watch was dropped).
    /// One caller at a time: kube-runtime 5.0.0's `Store::wait_until_ready` wakes only the
    /// last of several concurrent waiters (`src/utils/delayed_init.rs`, a oneshot receiver).
    pub async fn synced(&self) -> bool {
        let tokens = async {
            match &self.tokens {
                Some(tokens) => tokens.wait_until_ready().await,
                None => Ok(()),
            }
        };
        let (hosts, vms, groups, nodes, reports, secrets, launchers, tokens) = futures::join!(
            self.hosts.wait_until_ready(),
            self.vms.wait_until_ready(),
            self.groups.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.reports.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.launcher_pods.wait_until_ready(),
            tokens
        );
        let synced = hosts.and(vms).and(groups).and(nodes).and(reports).and(secrets).and(launchers).and(tokens);
        if let Err(error) = &synced {
            tracing::error!(%error, "a cache could not sync");
        }
        synced.is_ok()
    }

    /// Whether the caches hold the object of this kind and key (a `Token`: the minted token's
    /// Secret).
    pub fn contains(&self, kind: &str, key: &ObjectKey) -> bool {
        match (kind, key.namespace()) {
            ("CatalystHost", None) => self.host(key.name()).is_some(),
            ("CatalystVM", Some(_)) => self.vm(key).is_some(),
            ("ServiceGroup", Some(_)) => self.groups.get(&object_ref(key)).is_some(),
            ("Secret", Some(_)) => self.secret_version(key).is_some(),
            ("Token", _) => self.token(key.name()).is_some(),
            _ => false,
        }
    }

    pub fn hosts(&self) -> Vec<Arc<DeserializeGuard<CatalystHost>>> {
        self.hosts.state()
    }

    pub fn host(&self, name: &str) -> Option<CatalystHost> {
        self.hosts.get(&ObjectRef::new(name)).and_then(|g| g.0.as_ref().ok().cloned())
    }

    pub fn vm(&self, key: &ObjectKey) -> Option<CatalystVM> {
        self.vms.get(&object_ref(key)).and_then(|g| g.0.as_ref().ok().cloned())
    }

    /// Whether the cache holds a valid CatalystVM `key`, without copying it: a placement turn
    /// asks this of every ledger entry.
    pub fn has_vm(&self, key: &ObjectKey) -> bool {
        self.vms.get(&object_ref(key)).is_some_and(|g| g.0.is_ok())
    }

    /// The valid ServiceGroups that name the VM `vm`.
    pub fn groups_of_vm(&self, vm: &ObjectKey) -> Vec<Arc<DeserializeGuard<ServiceGroup>>> {
        cached_valid(&self.groups, self.groups_by_vm.get(vm))
    }

    /// The valid CatalystVMs whose status names `host` (`None`: the VMs on no host yet).
    pub fn vms_on(&self, host: Option<HostName>) -> Vec<Arc<DeserializeGuard<CatalystVM>>> {
        cached_valid(&self.vms, self.vms_by_host.get(&host))
    }

    /// The version of the Secret the cache holds, if it holds the Secret.
    pub fn secret_version(&self, key: &ObjectKey) -> Option<String> {
        let secret = self.secrets.get(&object_ref(key))?;
        Some(secret.metadata.resource_version.clone().unwrap_or_default())
    }

    /// The Node named `name`: a VM's node is the one named after it ([`node_name`]), never
    /// one that only carries its label, which any kubelet may set.
    ///
    /// [`node_name`]: catalyst_core::validation::node_name
    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    /// Whether the host's node is fenced: it carries the out-of-service taint, which an admin
    /// or a remediation operator sets once the server is off (see [`OUT_OF_SERVICE`]).
    pub fn fenced(&self, host: &CatalystHost) -> bool {
        let node = self.nodes.get(&ObjectRef::new(&host.spec.node_name));
        let taints = node.as_ref().and_then(|n| n.spec.as_ref()).and_then(|s| s.taints.as_ref());
        taints.is_some_and(|taints| taints.iter().any(|t| t.key == OUT_OF_SERVICE))
    }

    /// The minted token Secret `name` in `kube-system`, by metadata.
    pub fn token(&self, name: &str) -> Option<Arc<PartialObjectMeta<Secret>>> {
        let namespace = catalyst_core::render::token::TOKEN_NAMESPACE;
        self.tokens.as_ref()?.get(&ObjectRef::new(name).within(namespace))
    }

    /// The names of the launcher pods KubeVirt made for the VM `vm`.
    pub fn launchers_of(&self, vm: &ObjectKey) -> Vec<String> {
        self.launchers.get(vm).iter().map(|pod| pod.name().to_string()).collect()
    }

    /// A cached host whose ledger holds the VM `vm`.
    pub fn host_holding(&self, vm: &ObjectKey) -> Option<HostName> {
        self.hosts_by_ledger.get(vm).first().map(|host| HostName::from(host.name()))
    }
}

/// The reference a cache finds the object of `key` by.
pub fn object_ref<K: Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectRef<K> {
    let reference = ObjectRef::new(key.name());
    match key.namespace() {
        Some(namespace) => reference.within(namespace),
        None => reference,
    }
}

/// The valid cached objects of these keys, as an index lists them.
fn cached_valid<K>(store: &Store<DeserializeGuard<K>>, keys: Vec<ObjectKey>) -> Vec<Arc<DeserializeGuard<K>>>
where
    DeserializeGuard<K>: Resource<DynamicType = ()> + Clone,
{
    keys.iter().filter_map(|key| store.get(&object_ref(key))).filter(|guard| guard.0.is_ok()).collect()
}

/// The VMs a host's ledger (`status.vms`) holds; the host's next status write drops an entry
/// that names none ([`vm_key`]).
pub fn ledger_of(host: &CatalystHost) -> impl Iterator<Item = ObjectKey> + '_ {
    host.status.iter().flat_map(|status| &status.vms).filter_map(|entry| vm_key(entry))
}

/// The key of the VM that text of the API (a ledger entry, a move) names: none for text that
/// names no namespaced object, which no VM is.
pub fn vm_key(text: &str) -> Option<ObjectKey> {
    text.parse::<ObjectKey>().ok().filter(|key| key.namespace().is_some())
}

/// The VMs of ledger entries the VM cache has not seen, read from the API server: the VMs that
/// exist, and the keys of those that do not. A cache lagging behind a placement must neither
/// hide a VM's cores and spread group nor drop its ledger entry.
pub async fn read_unseen(
    ctx: &Context,
    keys: &[ObjectKey],
) -> Result<(Vec<CatalystVM>, std::collections::BTreeSet<ObjectKey>), Error> {
    let mut found = Vec::new();
    let mut gone = std::collections::BTreeSet::new();
    for key in keys {
        let Some(namespace) = key.namespace() else {
            gone.insert(key.clone());
            continue;
        };
        if ctx.stores.has_vm(key) {
            continue;
        }
        let read = Api::<CatalystVM>::namespaced(ctx.client.clone(), namespace).get_opt(key.name()).await;
        match read.map_err(|source| Error::ReadVm { vm: key.clone(), source })? {
            Some(vm) => found.push(vm),
            None => {
                gone.insert(key.clone());
            }
        }
    }
    Ok((found, gone))
}

/// Valid objects of a store of guarded ones.
pub fn valid<K: Clone>(guards: &[Arc<DeserializeGuard<K>>]) -> impl Iterator<Item = &K> {
    guards.iter().filter_map(|g| g.0.as_ref().ok())
}

/// Exponential backoff per object (its kind and key): 1s, 2s, 4s ... up to 5 minutes; reset
/// by a success, and forgotten once the object is gone.
#[derive(Default)]
pub struct Backoff {
    pub failures: PerObject<u32>,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(300);

    pub fn failed(&self, kind: &str, key: &ObjectKey) -> Duration {
        let mut failures = self.failures.lock();
        let count = failures.entry(object_id(kind, key)).or_insert(0);
        let delay = Self::BASE.saturating_mul(1u32 << (*count).min(16));
        *count += 1;
        delay.min(Self::MAX)
    }

    pub fn succeeded(&self, kind: &str, key: &ObjectKey) {
        self.failures.lock().remove(&object_id(kind, key));
    }
}

/// The status this operator last wrote for each object (a digest, transition times left out)
/// and the resourceVersion it wrote over. A reconcile of a cached copy that does not show that
/// write yet (still at that version) would otherwise write the same status again.
#[derive(Default)]
pub struct Written {
    pub last: PerObject<(Option<String>, u64)>,
}

impl Written {
    /// Whether `digest` is what was last written over `version`.
    pub fn already(&self, kind: &str, key: &ObjectKey, version: Option<&str>, digest: u64) -> bool {
        self.last
            .lock()
            .get(&object_id(kind, key))
            .is_some_and(|(over, written)| over.as_deref() == version && *written == digest)
    }

    pub fn record(&self, kind: &str, key: &ObjectKey, version: Option<String>, digest: u64) {
        self.last.lock().insert(object_id(kind, key), (version, digest));
    }
}

/// A digest of a status without its conditions' transition times (a stale reconcile computes
/// those anew).
pub fn digest<S: Serialize>(status: &S) -> u64 {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                fields.remove("lastTransitionTime");
                fields.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(status).expect("a status serializes");
    strip(&mut value);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&value.to_string(), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub events: events::Events,
    pub stores: Stores,
    pub overhead: Overhead,
    pub backoff: Backoff,
    pub written: Written,
    /// The children known to hold what was last applied to them.
    pub known: Arc<apply::Known>,
    /// The join credentials last read, with the version of their Secret then: read again only
    /// when the Secrets' watch shows another version.
    pub join_secrets: PerObject<(String, catalyst_core::render::JoinCredentials)>,
    /// The time written into condition transitions; a clock in production, fixed in tests.
    pub clock: fn() -> Time,
    pub metrics: Arc<Metrics>,
    /// Placements take turns within the process; see [`placement`].
    pub placement: tokio::sync::Mutex<()>,
    /// The namespaces this operator manages; all when empty.
    pub namespaces: Vec<String>,
    /// Each VM joins with a bootstrap token of its own ([`join_token`]).
    pub mint_join_tokens: bool,
    /// Each VM's token, once minted or read from its cloud-init Secret.
    pub tokens: PerObject<catalyst_core::render::token::BootstrapToken>,
    /// The tokens kube-controller-manager's bootstrapsigner has signed (by their Secret).
    pub signed: PerObject<()>,
    /// The API server's minor release, from its `/version` (0 while unknown): a VM-node of
    /// another release than it or the one before is refused ([`catalyst_core::release::skew`]).
    pub server_minor: std::sync::atomic::AtomicU32,
    /// When each ServiceGroup last had a replica recreated, and the pause before the next.
    pub repairs: PerObject<(std::time::Instant, Duration)>,
    /// The VM of each spread group whose move this process began and has not yet seen end, by
    /// group: one member moves at a time, even before the caches show it.
    pub moving_groups: Mutex<HashMap<ObjectKey, ObjectKey>>,
    /// The CatalystHosts this operator manages.
    pub host_pool: catalyst_core::pool::HostPool,
    /// How long a placement may search for a packing when the heuristic leaves a VM out; it
    /// holds the placement turn meanwhile, so it is shorter than `plan`'s.
    pub search: catalyst_core::planner::SearchBudget,
}

/// Whether a Node's Ready condition is True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The current time, for conditions.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Context {
    /// `instance` names this replica in the events it publishes (its pod, in a cluster).
    pub fn new(client: Client, stores: Stores, overhead: Overhead, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: CONTROLLER_NAME.into(), instance };
        Self {
            events: events::Events::new(client.clone(), reporter),
            client,
            stores,
            overhead,
            backoff: Backoff::default(),
            written: Written::default(),
            known: Arc::default(),
            join_secrets: PerObject::default(),
            clock: now,
            metrics: Arc::default(),
            placement: tokio::sync::Mutex::new(()),
            namespaces: Vec::new(),
            host_pool: catalyst_core::pool::HostPool::default(),
            search: catalyst_core::planner::SearchBudget::default(),
            mint_join_tokens: false,
            tokens: PerObject::default(),
            signed: PerObject::default(),
            server_minor: std::sync::atomic::AtomicU32::new(0),
            repairs: PerObject::default(),
            moving_groups: Mutex::default(),
        }
    }

    /// Reads the API server's `/version` again; a failure keeps what was known.
    pub async fn read_server_version(&self) {
        match self.client.apiserver_version().await {
            Ok(info) => match catalyst_core::release::server_minor(&info.major, &info.minor) {
                Some(minor) => self.server_minor.store(minor, std::sync::atomic::Ordering::Relaxed),
                None => {
                    tracing::warn!(major = %info.major, minor = %info.minor, "an API server version not of Kubernetes 1.x")
                }
            },
            Err(error) => tracing::warn!(%error, "could not read the API server's version"),
        }
    }

    /// Records a finished reconcile of `kind` in the metrics: `ok`, `wait` (an expected wait,
    /// [`Error::is_wait`]) or `error`.
    pub fn reconciled<T>(&self, kind: &'static str, started: std::time::Instant, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) if error.is_wait() => "wait",
            Err(_) => "error",
        };
        self.metrics.reconciled(kind, outcome, started.elapsed());
    }

    /// The threads per core of the host `vm` is placed on (1 while it has none).
    pub fn host_threads(&self, vm: &CatalystVM) -> u64 {
        let host = vm.status.as_ref().and_then(|s| s.host.as_deref()).and_then(|h| self.stores.host(h));
        host.map_or(1, |h| h.spec.threads())
    }

    /// Publishes an event on `object`; a failure to publish is logged, never fatal.
    pub async fn event(&self, object: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let event =
            Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        if let Err(error) = self.events.publish(&event, object).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }
}

/// Object key for ledgers, logs and backoff.
pub fn key_of<K: Resource>(object: &K) -> ObjectKey {
    ObjectKey::of(object)
}

/// Warns about an object that does not deserialize, and waits for it to change.
pub async fn report_malformed<K: Resource<DynamicType = ()>>(ctx: &Context, guard: &DeserializeGuard<K>) -> Action {
    if let Err(invalid) = &guard.0 {
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: invalid.metadata.name.clone(),
            namespace: invalid.metadata.namespace.clone(),
            uid: invalid.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        tracing::warn!(name = ?invalid.metadata.name, error = %invalid.error, "malformed object");
        ctx.event(&reference, EventType::Warning, "Malformed", format!("cannot be read: {}", invalid.error)).await;
    }
    Action::await_change()
}

/// Runs one reconcile of a guarded object: a malformed one is reported and waits for a change;
/// a valid one goes to `apply` inside a span naming it, timed into the metrics, its backoff
/// reset when it succeeds.
pub async fn reconcile_guarded<K, F, Fut>(
    kind: &'static str,
    guard: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    apply: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone,
    F: FnOnce(K, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let Ok(object) = &guard.0 else { return Ok(report_malformed(&ctx, &guard).await) };
    if let Some(namespace) = object.namespace()
        && !ctx.namespaces.is_empty()
        && !ctx.namespaces.contains(&namespace)
    {
        // Another operator's, when several namespaces are watched cluster-wide.
        return Ok(Action::await_change());
    }
    let key = key_of(object);
    let span = tracing::info_span!("reconcile", kind, object = %key);
    let started = std::time::Instant::now();
    let result = tracing::Instrument::instrument(apply(object.clone(), ctx.clone()), span).await;
    if result.is_ok() {
        ctx.backoff.succeeded(kind, &key);
    }
    ctx.reconciled(kind, started, &result);
    result
}

/// The error policy of all three controllers: back off exponentially, per object.
pub fn error_policy<K>(guard: Arc<DeserializeGuard<K>>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = match &guard.0 {
        Ok(object) => key_of(object),
        Err(invalid) => {
            ObjectKey::new(invalid.metadata.namespace.clone(), invalid.metadata.name.clone().unwrap_or_default())
        }
    };
    let kind = K::kind(&());
    if error.is_wait() {
        tracing::debug!(object = %key, %error, "waiting");
        return Action::requeue(WAIT_AGAIN);
    }
    ctx.metrics.reconcile_errors.get_or_create(&ErrorLabels { kind: kind.to_string(), error: error.label() }).inc();
    let delay = ctx.backoff.failed(&kind, &key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// How soon an object that waits (for a deletion, or after losing a placement race) is looked
/// at again; its backoff stays where it is.
const WAIT_AGAIN: Duration = Duration::from_secs(1);
