//! Wiring: the caches, the three controllers and what wakes each of them.

use super::{Context, Stores, error_policy, group, host, valid, vm};
use crate::metrics::Metrics;
use catalyst_api::kubevirt::VirtualMachine;
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::planner::Overhead;
use catalyst_core::pool::HostPool;
use catalyst_core::render::labels;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Node;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

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

/// A cache kept current by a watch, and the task that feeds it.
fn cache<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl Stream<Item = ()> + Send)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let feed = reflector::reflector(writer, watcher(api, config)).default_backoff().applied_objects().map(|_| ());
    (store, feed)
}

fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER))
}

/// Runs the three controllers until SIGTERM or SIGINT, after the caches have synced.
/// `ready` is called once they have.
pub async fn run(client: Client, config: Config, metrics: Arc<Metrics>, ready: impl FnOnce()) {
    let ns = &config.namespaces;
    let (hosts, hosts_feed) =
        cache(Api::<DeserializeGuard<CatalystHost>>::all(client.clone()), pool_hosts(&config.host_pool));
    let (vms, vms_feed) = cache(scoped::<DeserializeGuard<CatalystVM>>(&client, ns), watcher::Config::default());
    let (groups, groups_feed) =
        cache(scoped::<DeserializeGuard<ServiceGroup>>(&client, ns), watcher::Config::default());
    let (nodes, nodes_feed) = cache(Api::<Node>::all(client.clone()), watcher::Config::default());
    let feeds =
        futures::stream::select_all([hosts_feed.boxed(), vms_feed.boxed(), groups_feed.boxed(), nodes_feed.boxed()]);
    let feeding = tokio::spawn(feeds.for_each(|()| async {}));
    for synced in [
        hosts.wait_until_ready().await,
        vms.wait_until_ready().await,
        groups.wait_until_ready().await,
        nodes.wait_until_ready().await,
    ] {
        if let Err(error) = synced {
            tracing::error!(%error, "a cache could not sync");
            return;
        }
    }
    ready();
    tracing::info!("caches synced; reconciling");
    let stores = Stores { hosts: hosts.clone(), vms: vms.clone(), groups: groups.clone(), nodes };
    let mut ctx = Context::new(client.clone(), stores, config.overhead, config.instance.clone());
    ctx.metrics = metrics;
    ctx.namespaces = config.namespaces.clone();
    ctx.host_pool = config.host_pool.clone();
    ctx.search = config.search;
    let ctx = Arc::new(ctx);

    let unplaced_vms = vms.clone();
    let vm_controller =
        Controller::new(scoped::<DeserializeGuard<CatalystVM>>(&client, ns), watcher::Config::default())
            .owns(scoped::<VirtualMachine>(&client, ns), managed())
            // Room freed on a host may let a waiting VM in.
            .watches(
                Api::<DeserializeGuard<CatalystHost>>::all(client.clone()),
                pool_hosts(&config.host_pool),
                move |_| {
                    valid(&unplaced_vms.state())
                        .filter(|vm| vm.status.as_ref().and_then(|s| s.host.as_ref()).is_none())
                        .map(|vm| ObjectRef::from_obj(&guarded(vm)))
                        .collect::<Vec<_>>()
                },
            )
            // What a VM's node still offers (status.available) changes with its ServiceGroups.
            .watches(scoped::<DeserializeGuard<ServiceGroup>>(&client, ns), watcher::Config::default(), |group| {
                let group = group.0.as_ref().ok()?;
                Some(ObjectRef::new(&group.spec.vm).within(&group.namespace()?))
            })
            // A VM's node joining or going NotReady changes the VM's status.
            .watches(Api::<Node>::all(client.clone()), watcher::Config::default().labels(labels::VM), |node| {
                let value = node.labels().get(labels::VM)?;
                let (namespace, name) = value.split_once('.')?;
                Some(ObjectRef::new(name).within(namespace))
            })
            .shutdown_on_signal()
            .run(vm::reconcile, error_policy, ctx.clone())
            .for_each(|result| async move { log("CatalystVM", result) });

    let groups_of_vm = groups.clone();
    let group_controller =
        Controller::new(scoped::<DeserializeGuard<ServiceGroup>>(&client, ns), watcher::Config::default())
            .owns(scoped::<StatefulSet>(&client, ns), managed())
            .watches(scoped::<DeserializeGuard<CatalystVM>>(&client, ns), watcher::Config::default(), move |vm| {
                let Ok(vm) = &vm.0 else { return Vec::new() };
                valid(&groups_of_vm.state())
                    .filter(|g| g.namespace() == vm.namespace() && g.spec.vm == vm.name_any())
                    .map(|g| ObjectRef::from_obj(&guarded(g)))
                    .collect()
            })
            .shutdown_on_signal()
            .run(group::reconcile, error_policy, ctx.clone())
            .for_each(|result| async move { log("ServiceGroup", result) });

    let hosts_of_node = hosts.clone();
    let host_controller =
        Controller::new(Api::<DeserializeGuard<CatalystHost>>::all(client.clone()), pool_hosts(&config.host_pool))
            .watches(scoped::<DeserializeGuard<CatalystVM>>(&client, ns), watcher::Config::default(), |vm| {
                let host = vm.0.as_ref().ok()?.status.as_ref()?.host.clone()?;
                Some(ObjectRef::new(&host))
            })
            .watches(Api::<Node>::all(client.clone()), watcher::Config::default(), move |node| {
                valid(&hosts_of_node.state())
                    .filter(|h| h.spec.node_name == node.name_any())
                    .map(|h| ObjectRef::from_obj(&guarded(h)))
                    .collect::<Vec<_>>()
            })
            .shutdown_on_signal()
            .run(host::reconcile, error_policy, ctx)
            .for_each(|result| async move { log("CatalystHost", result) });

    futures::join!(vm_controller, group_controller, host_controller);
    feeding.abort();
    tracing::info!("controllers stopped");
}

/// A valid object wrapped the way the controllers see it, to build its reference.
fn guarded<K: Clone>(object: &K) -> DeserializeGuard<K> {
    DeserializeGuard(Ok(object.clone()))
}

fn log<T: Debug, E: std::fmt::Display>(kind: &str, result: Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(kind, ?object, "reconciled"),
        Err(error) => tracing::debug!(kind, %error, "controller event"),
    }
}
