//! The reconcilers against a fake API server: the exact requests each makes, that an unchanged
//! world costs no write, and that bad input changes nothing but the object's own status.

mod support;

use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::key::ObjectKey;
use catalyst_core::manifest;
use catalyst_core::planner::Overhead;
use catalyst_operator::controller::{self, Context, Stores};
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use support::FakeApi;

const HOSTS: &str = "/apis/catalyst.io/v1alpha1/catalysthosts";
const VMS: &str = "/apis/catalyst.io/v1alpha1/namespaces/catalyst-demo/catalystvms";
const GROUPS: &str = "/apis/catalyst.io/v1alpha1/namespaces/catalyst-demo/servicegroups";
const MACHINES: &str = "/apis/kubevirt.io/v1/namespaces/catalyst-demo/virtualmachines";
const SECRETS: &str = "/api/v1/namespaces/catalyst-demo/secrets";
const SETS: &str = "/apis/apps/v1/namespaces/catalyst-demo/statefulsets";
const SERVICES: &str = "/api/v1/namespaces/catalyst-demo/services";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/catalyst-demo/events";

fn fixed_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_790_000_000).unwrap())
}

/// The minimal sample, as the API server would hold it (uids, generations, the VM finalizer).
struct World {
    hosts: Vec<CatalystHost>,
    vms: Vec<CatalystVM>,
    groups: Vec<ServiceGroup>,
}

fn world() -> World {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/samples/minimal");
    let (mut manifests, errors) = manifest::load(&[path]);
    assert!(errors.is_empty());
    for host in &mut manifests.hosts {
        host.metadata.uid = Some(format!("uid-{}", host.metadata.name.clone().unwrap()));
        host.metadata.generation = Some(1);
    }
    for vm in &mut manifests.vms {
        vm.metadata.uid = Some(format!("uid-{}", vm.metadata.name.clone().unwrap()));
        vm.metadata.generation = Some(1);
        vm.metadata.finalizers = Some(vec![controller::FINALIZER.into()]);
    }
    for group in &mut manifests.groups {
        group.metadata.uid = Some(format!("uid-group-{}", group.metadata.name.clone().unwrap()));
        group.metadata.generation = Some(1);
    }
    World { hosts: manifests.hosts, vms: manifests.vms, groups: manifests.groups }
}

/// The sample with one host of 12 cores (room for one VM) and no spread group.
fn one_small_host() -> World {
    let mut world = world();
    world.hosts.truncate(1);
    world.hosts[0].spec.capacity.cpu = 12;
    for vm in &mut world.vms {
        vm.spec.placement.spread_group = None;
    }
    world
}

fn store<K>(objects: impl IntoIterator<Item = K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    store
}

fn guarded<K: Clone>(objects: &[K]) -> Vec<DeserializeGuard<K>> {
    objects.iter().cloned().map(|o| DeserializeGuard(Ok(o))).collect()
}

fn context(client: kube::Client, world: &World, nodes: Vec<Node>) -> Arc<Context> {
    let stores = Stores {
        hosts: store(guarded(&world.hosts)),
        vms: store(guarded(&world.vms)),
        groups: store(guarded(&world.groups)),
        nodes: store(nodes),
        reports: store(Vec::new()),
        // What the Secrets' watch shows: the join Secret the minimal sample's VMs name.
        secrets: store(vec![
            serde_json::from_value::<PartialObjectMeta<Secret>>(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "catalyst-join", "namespace": "catalyst-demo", "resourceVersion": "1"}
            }))
            .unwrap(),
        ]),
        groups_by_vm: Arc::new(controller::index::GroupsByVm::groups().of(&guarded(&world.groups))),
        vms_by_host: Arc::new(controller::index::VmsByHost::vms().of(&guarded(&world.vms))),
        hosts_by_ledger: Arc::new(controller::index::HostsByLedger::ledgers().of(&guarded(&world.hosts))),
        launcher_pods: store(Vec::new()),
        launchers: Arc::new(controller::index::LaunchersByVm::launchers()),
        tokens: None,
    };
    let mut ctx = Context::new(client, stores, Overhead::default(), None);
    ctx.clock = fixed_time;
    Arc::new(ctx)
}

/// Puts the world's objects into the fake server, as their paths.
fn serve(fake: &FakeApi, world: &World) {
    // The join credentials the minimal sample's VMs name.
    fake.insert(
        &format!("{SECRETS}/catalyst-join"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "catalyst-join"},
        "data": {"apiServerEndpoint": "MTAuMC4wLjE6NjQ0Mw==", "token": "dG9rZW4=", "caCertHash": "c2hhMjU2OjAw"}}),
    );
    for host in &world.hosts {
        fake.insert(&format!("{HOSTS}/{}", host.metadata.name.clone().unwrap()), serde_json::to_value(host).unwrap());
    }
    for vm in &world.vms {
        fake.insert(&format!("{VMS}/{}", vm.metadata.name.clone().unwrap()), serde_json::to_value(vm).unwrap());
    }
    for group in &world.groups {
        fake.insert(
            &format!("{GROUPS}/{}", group.metadata.name.clone().unwrap()),
            serde_json::to_value(group).unwrap(),
        );
    }
}

/// The world as the fake server now holds it (what the watches would bring the stores).
fn reread(fake: &FakeApi, world: &World) -> World {
    let read = |path: String| fake.get(&path).unwrap();
    World {
        hosts: world
            .hosts
            .iter()
            .map(|h| serde_json::from_value(read(format!("{HOSTS}/{}", h.metadata.name.clone().unwrap()))).unwrap())
            .collect(),
        vms: world
            .vms
            .iter()
            .map(|v| serde_json::from_value(read(format!("{VMS}/{}", v.metadata.name.clone().unwrap()))).unwrap())
            .collect(),
        groups: world
            .groups
            .iter()
            .map(|g| serde_json::from_value(read(format!("{GROUPS}/{}", g.metadata.name.clone().unwrap()))).unwrap())
            .collect(),
    }
}

/// The sample after api-a's first reconcile, as the API server holds it, with the requests
/// of that reconcile forgotten.
async fn with_api_a_placed() -> (World, FakeApi, kube::Client) {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::vm::reconcile(vm_guard(&world, "api-a"), context(client.clone(), &world, vec![])).await.unwrap();
    let placed = reread(&fake, &world);
    fake.forget_requests();
    (placed, fake, client)
}

fn vm_guard(world: &World, name: &str) -> Arc<DeserializeGuard<CatalystVM>> {
    Arc::new(DeserializeGuard(Ok(world.vms.iter().find(|v| v.metadata.name.as_deref() == Some(name)).unwrap().clone())))
}

fn group_guard(world: &World, name: &str) -> Arc<DeserializeGuard<ServiceGroup>> {
    Arc::new(DeserializeGuard(Ok(world
        .groups
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some(name))
        .unwrap()
        .clone())))
}

/// Issue 25, item 3: once the children's watches have listed them, a child they have not seen
/// is applied without being read first; one they have seen is read (it may hold what is wanted).
#[tokio::test]
async fn a_child_the_watch_has_not_seen_is_applied_without_a_read() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    ctx.known.listed("VirtualMachine", None);
    ctx.known.listed("Secret", Some(vec![ObjectKey::namespaced("catalyst-demo", "catalyst-join")]));
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx).await.unwrap();
    let requests = fake.requests();
    for unread in [format!("GET {SECRETS}/api-a-cloud-init"), format!("GET {MACHINES}/api-a")] {
        assert!(!requests.contains(&unread), "{unread} in {requests:?}");
    }
    for write in [format!("PATCH {SECRETS}/api-a-cloud-init"), format!("PATCH {MACHINES}/api-a")] {
        assert!(requests.contains(&write), "{write} missing in {requests:?}");
    }
    assert!(requests.contains(&format!("GET {SECRETS}/catalyst-join")), "the join Secret's data is read");
}

#[tokio::test]
async fn a_new_vm_is_placed_with_a_compare_and_swap_then_rendered_and_reported() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx).await.unwrap();
    assert_eq!(
        fake.requests(),
        [
            format!("GET {HOSTS}"),
            // api-a's host first, then the other VM the plan placed (a batch); each VM's Placed
            // event once its ledger is written.
            format!("PUT {HOSTS}/small-1/status"),
            format!("POST {EVENTS}"),
            format!("PUT {HOSTS}/small-2/status"),
            format!("POST {EVENTS}"),
            // The join credentials the VM names.
            format!("GET {SECRETS}/catalyst-join"),
            format!("GET {SECRETS}/api-a-cloud-init"),
            format!("PATCH {SECRETS}/api-a-cloud-init"),
            format!("GET {MACHINES}/api-a"),
            format!("PATCH {MACHINES}/api-a"),
            format!("PATCH {VMS}/api-a/status"),
        ]
    );
    let host = fake.get(&format!("{HOSTS}/small-1")).unwrap();
    assert_eq!(host["status"]["vms"], json!(["catalyst-demo/api-a"]), "the ledger holds the VM");
    let other = fake.get(&format!("{HOSTS}/small-2")).unwrap();
    assert_eq!(other["status"]["vms"], json!(["catalyst-demo/api-b"]), "the batch reserved api-b too");
    let machine = fake.get(&format!("{MACHINES}/api-a")).unwrap();
    assert_eq!(machine["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"], "worker-1");
    assert_eq!(machine["metadata"]["ownerReferences"][0]["uid"], "uid-api-a");
    assert_eq!(machine["metadata"]["ownerReferences"][0]["controller"], true);
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    assert_eq!(vm["status"]["host"], "small-1");
    assert_eq!(vm["status"]["phase"], "Scheduled");
    // The node offers 7 cores and 32Gi - 512Mi (page structures) - 4Gi - 100Mi = 28060Mi, less
    // the 500m and 512Mi of headroom; the group takes 3 x (2, 8Gi).
    assert_eq!(vm["status"]["available"], json!({"cpu": "500m", "memory": "2972Mi"}));
    assert_eq!(vm["status"]["topologyManagerPolicy"], "single-numa-node", "no NUMA passthrough: one guest NUMA node");
    let ready = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("Provisioning")));
}

#[tokio::test]
async fn a_vm_whose_place_a_batch_reserved_adopts_it_from_the_cached_ledger_without_planning() {
    let (placed, fake, client) = with_api_a_placed().await;
    controller::vm::reconcile(vm_guard(&placed, "api-b"), context(client, &placed, vec![])).await.unwrap();
    let requests = fake.requests();
    assert!(!requests.contains(&format!("GET {HOSTS}")), "no list of the hosts: {requests:?}");
    assert!(requests.iter().all(|r| !r.starts_with(&format!("PUT {HOSTS}"))), "no ledger write: {requests:?}");
    assert_eq!(fake.get(&format!("{VMS}/api-b")).unwrap()["status"]["host"], "small-2");
}

#[tokio::test]
async fn a_reconcile_of_a_copy_that_does_not_show_its_own_status_write_yet_writes_nothing() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    fake.forget_requests();
    // The caches still hold the copies from before the first reconcile's writes.
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx).await.unwrap();
    assert_eq!(fake.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_secret_known_to_be_current_is_not_read_again_until_its_watch_sees_another_version() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    let secret = format!("GET {SECRETS}/api-a-cloud-init");
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    assert!(!fake.requests().contains(&secret), "{:?}", fake.requests());
    // Someone edits it: the watch reports a version the operator did not write.
    ctx.known.observed("Secret", &ObjectKey::namespaced("catalyst-demo", "api-a-cloud-init"), Some("edited"));
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx).await.unwrap();
    assert!(fake.requests().contains(&secret), "{:?}", fake.requests());
}

/// The join Secret is read once, then again only when the Secrets' watch shows another
/// version of it; a missing one is not polled (its appearance wakes the VM).
#[tokio::test]
async fn a_join_secret_is_read_again_only_when_its_version_changes() {
    let (settled, fake, client) = with_api_a_placed().await;
    let ctx = context(client.clone(), &settled, vec![]);
    let join = format!("GET {SECRETS}/catalyst-join");
    controller::vm::reconcile(vm_guard(&settled, "api-a"), ctx.clone()).await.unwrap();
    assert!(fake.requests().contains(&join));
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&settled, "api-a"), ctx.clone()).await.unwrap();
    assert!(!fake.requests().contains(&join), "{:?}", fake.requests());
    // Rotated: the watch brings version 2.
    let mut rotated = Context::new(client, ctx.stores.clone(), Overhead::default(), None);
    rotated.stores.secrets = store(vec![
        serde_json::from_value::<PartialObjectMeta<Secret>>(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "catalyst-join", "namespace": "catalyst-demo", "resourceVersion": "2"}
        }))
        .unwrap(),
    ]);
    rotated.join_secrets.lock().extend(ctx.join_secrets.lock().drain());
    rotated.clock = fixed_time;
    controller::vm::reconcile(vm_guard(&settled, "api-a"), Arc::new(rotated)).await.unwrap();
    assert!(fake.requests().contains(&join), "{:?}", fake.requests());
}

#[tokio::test]
async fn an_unchanged_world_costs_no_write() {
    let (settled, fake, client) = with_api_a_placed().await;
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    assert_eq!(fake.writes(), Vec::<String>::new());
    // A fresh operator (this context is new) reads the join Secret once; children it does
    // not know are read too, from the API server's watch cache, not as quorum reads of etcd.
    assert_eq!(
        fake.requests(),
        [
            format!("GET {SECRETS}/catalyst-join"),
            format!("GET {SECRETS}/api-a-cloud-init"),
            format!("GET {MACHINES}/api-a")
        ]
    );
    let query = fake.queries_of(&format!("GET {MACHINES}/api-a")).concat();
    assert!(query.split('&').any(|parameter| parameter == "resourceVersion=0"), "{query}");
}

#[tokio::test]
async fn an_owned_child_deleted_by_hand_is_recreated() {
    let (settled, fake, client) = with_api_a_placed().await;
    let machine = format!("{MACHINES}/api-a");
    fake.insert(
        &machine,
        json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "api-a"}, "spec": {}}),
    );
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    assert_eq!(fake.writes(), [format!("PATCH {MACHINES}/api-a")], "the hand-edited VirtualMachine is re-applied");
}

#[tokio::test]
async fn an_invalid_spec_changes_nothing_but_its_status() {
    let mut world = world();
    world.vms[0].spec.cpu = 1;
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let action = controller::vm::reconcile(vm_guard(&world, "api-a"), context(client, &world, vec![])).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(fake.requests(), [format!("PATCH {VMS}/api-a/status"), format!("POST {EVENTS}")]);
    let status = fake.body_of(&format!("PATCH {VMS}/api-a/status")).unwrap();
    let ready = &status["status"]["conditions"][0];
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.node.reservedCpu = 1: node.reservedCpu must be less than the VM's cpu"),
        "{ready}"
    );
    assert_eq!(status["status"]["phase"], "Pending", "every state has a phase");
    assert_eq!(fake.body_of(&format!("POST {EVENTS}")).unwrap()["reason"], "InvalidSpec");
}

#[tokio::test]
async fn a_vm_waiting_for_its_join_secret_is_scheduled_and_says_so() {
    let mut world = world();
    world.vms[0].spec.node.join_secret_name = Some("join".into());
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::vm::reconcile(vm_guard(&world, "api-a"), context(client, &world, vec![])).await.unwrap();
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    assert_eq!((&vm["status"]["phase"], &vm["status"]["host"]), (&json!("Scheduled"), &json!("small-1")));
    let ready = &vm["status"]["conditions"][0];
    assert_eq!(
        (&ready["reason"], &ready["message"]),
        (&json!("JoinSecretMissing"), &json!("join Secret join not found in namespace catalyst-demo"))
    );
    assert!(fake.get(&format!("{MACHINES}/api-a")).is_none(), "no VirtualMachine without its join Secret");
}

#[tokio::test]
async fn losing_a_placement_race_writes_nothing_else_and_retries() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    fake.conflict_on(&format!("{HOSTS}/small-1/status"));
    let error =
        controller::vm::reconcile(vm_guard(&world, "api-a"), context(client, &world, vec![])).await.unwrap_err();
    assert!(error.to_string().contains("raced with another placement"), "{error}");
    assert_eq!(fake.requests(), [format!("GET {HOSTS}"), format!("PUT {HOSTS}/small-1/status")]);
}

#[tokio::test]
async fn two_vms_reconciled_at_once_never_overcommit_a_host() {
    let world = one_small_host();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    let (a, b) = tokio::join!(
        controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()),
        controller::vm::reconcile(vm_guard(&world, "api-b"), ctx.clone()),
    );
    assert!(a.is_ok() && b.is_ok());
    let host = fake.get(&format!("{HOSTS}/small-1")).unwrap();
    assert_eq!(host["status"]["vms"], json!(["catalyst-demo/api-a"]));
    assert_eq!(fake.writes().iter().filter(|r| r.starts_with(&format!("PATCH {MACHINES}"))).count(), 1);
    let waiting = fake.get(&format!("{VMS}/api-b")).unwrap();
    assert_eq!(waiting["status"]["phase"], "Pending");
    assert!(waiting["status"]["conditions"].as_array().unwrap().iter().any(|c| c["reason"] == "Unschedulable"));
}

/// Two hosts of 13 cores and VMs of 5, 5, 4, 4, 3, 3 cores with their emulator threads, each
/// launcher pod asking 15m more for its console-log sidecar (so 5 + 5 + 3 does not fit in 13),
/// reconciled in name order: placed one at a time by best fit decreasing alone, the last one
/// finds no room; each placement takes its host from a plan that packs them all.
#[tokio::test]
async fn vms_placed_one_by_one_follow_a_packing_of_them_all() {
    let mut world = world();
    for host in &mut world.hosts {
        host.spec.capacity.cpu = 13;
        host.spec.reserved.cpu = 0;
    }
    let template = world.vms[0].clone();
    world.vms = [4, 4, 3, 3, 2, 2]
        .iter()
        .enumerate()
        .map(|(i, &cpu)| {
            let mut vm = template.clone();
            vm.metadata.name = Some(format!("vm-{i}"));
            vm.metadata.uid = Some(format!("uid-vm-{i}"));
            vm.spec.cpu = cpu;
            vm.spec.placement = Default::default();
            vm
        })
        .collect();
    world.groups.clear();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    for i in 0..6 {
        controller::vm::reconcile(vm_guard(&world, &format!("vm-{i}")), ctx.clone()).await.unwrap();
    }
    for host in ["small-1", "small-2"] {
        let ledger = &fake.get(&format!("{HOSTS}/{host}")).unwrap()["status"]["vms"];
        assert_eq!(ledger.as_array().map(Vec::len), Some(3), "{host} holds {ledger}");
    }
}

#[tokio::test]
async fn a_stale_cache_cannot_double_book_a_host() {
    let mut world = one_small_host();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    // The API server's ledger already holds api-a (placed by another replica or before a
    // restart); the caches have not seen it yet, so api-b's plan picks the same host.
    let host_path = format!("{HOSTS}/small-1");
    let mut host = fake.get(&host_path).unwrap();
    host["status"] = json!({"vms": ["catalyst-demo/api-a"]});
    fake.insert(&host_path, host);
    world.vms[1].spec.cpu = 9; // larger, so a plan from the stale cache would place api-b first
    let action = controller::vm::reconcile(vm_guard(&world, "api-b"), context(client, &world, vec![])).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(300)));
    // Placements plan from the hosts as the API server has them, not from the cache.
    assert_eq!(
        fake.requests(),
        [format!("GET {HOSTS}"), format!("PATCH {VMS}/api-b/status"), format!("POST {EVENTS}")]
    );
    let waiting = fake.get(&format!("{VMS}/api-b")).unwrap();
    assert_eq!(waiting["status"]["phase"], "Pending");
}

#[tokio::test]
async fn a_group_that_does_not_fit_is_refused_and_nothing_running_is_touched() {
    let mut world = world();
    world.groups[0].spec.replicas = 4; // 4 x 2 cores > the 7 the VM's node offers
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::group::reconcile(group_guard(&world, "api-a"), context(client, &world, vec![])).await.unwrap();
    assert_eq!(fake.requests(), [format!("PATCH {GROUPS}/api-a/status"), format!("POST {EVENTS}")]);
    let status = fake.get(&format!("{GROUPS}/api-a")).unwrap()["status"].clone();
    let ready = &status["conditions"][0];
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("DoesNotFit")));
    assert!(
        ready["message"].as_str().unwrap().contains("cpu: requested 8 cores, available 6.5, short by 1.5"),
        "{ready}"
    );
    assert_eq!(status["requested"], json!({"cpu": "8", "memory": "32Gi"}));
}

#[tokio::test]
async fn a_group_that_fits_becomes_a_service_and_a_statefulset() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client.clone(), &world, vec![]);
    controller::group::reconcile(group_guard(&world, "api-a"), ctx).await.unwrap();
    assert_eq!(
        fake.requests(),
        [
            format!("GET {SERVICES}/api-a"),
            format!("PATCH {SERVICES}/api-a"),
            format!("GET {SETS}/api-a"),
            format!("PATCH {SETS}/api-a"),
            format!("PATCH {GROUPS}/api-a/status"),
        ]
    );
    let set: Value = fake.get(&format!("{SETS}/api-a")).unwrap();
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(set["metadata"]["ownerReferences"][0]["kind"], "ServiceGroup");
    // Scaling rolls out: the StatefulSet is re-applied with the new count, and nothing else is written.
    let mut scaled = reread(&fake, &world);
    scaled.groups[0].spec.replicas = 2;
    fake.forget_requests();
    controller::group::reconcile(group_guard(&scaled, "api-a"), context(client, &scaled, vec![])).await.unwrap();
    assert_eq!(fake.writes(), [format!("PATCH {SETS}/api-a"), format!("PATCH {GROUPS}/api-a/status")]);
    assert_eq!(fake.get(&format!("{SETS}/api-a")).unwrap()["spec"]["replicas"], 2);
}

#[tokio::test]
async fn a_host_reports_what_its_ledger_holds_and_then_stays_quiet() {
    let (placed, fake, client) = with_api_a_placed().await;
    let host = Arc::new(DeserializeGuard(Ok(placed.hosts[0].clone())));
    ok_or_wait(controller::host::reconcile(host, context(client.clone(), &placed, vec![])).await);
    assert_eq!(fake.requests(), [format!("PUT {HOSTS}/small-1/status")]);
    let status = fake.get(&format!("{HOSTS}/small-1")).unwrap()["status"].clone();
    assert_eq!(status["summary"], json!({"cpu": "9.015/30", "memory": "32.5Gi/120Gi", "vmCount": 1}));
    assert_eq!(status["free"]["cpu"], "20985m");
    let settled = reread(&fake, &placed);
    fake.forget_requests();
    let host = Arc::new(DeserializeGuard(Ok(settled.hosts[0].clone())));
    ok_or_wait(controller::host::reconcile(host, context(client, &settled, vec![])).await);
    assert_eq!(fake.requests(), Vec::<String>::new());
}

#[tokio::test]
async fn deleting_a_vm_removes_its_virtual_machine_then_releases_the_host() {
    let (mut deleting, fake, client) = with_api_a_placed().await;
    deleting.vms[0].metadata.deletion_timestamp = Some(fixed_time());
    let first =
        controller::vm::reconcile(vm_guard(&deleting, "api-a"), context(client.clone(), &deleting, vec![])).await;
    assert!(first.is_err(), "waits for the VirtualMachine to go");
    assert_eq!(fake.requests(), [format!("GET {MACHINES}/api-a"), format!("DELETE {MACHINES}/api-a")]);
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&deleting, "api-a"), context(client, &deleting, vec![])).await.unwrap();
    assert_eq!(
        fake.requests(),
        [
            format!("GET {MACHINES}/api-a"),
            format!("GET {HOSTS}/small-1"),
            format!("PUT {HOSTS}/small-1/status"),
            format!("PATCH {VMS}/api-a"),
        ]
    );
    assert_eq!(fake.get(&format!("{HOSTS}/small-1")).unwrap()["status"].get("vms"), None, "the ledger is empty");
    let patch = fake.body_of(&format!("PATCH {VMS}/api-a")).unwrap();
    assert_eq!(patch[1], json!({"op": "remove", "path": "/metadata/finalizers/0"}), "{patch}");
    assert_eq!(fake.get(&format!("{VMS}/api-a")).unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn a_host_never_takes_back_a_vm_whose_deletion_released_it() {
    // api-a's clean-up released its ledger entry; the host's reconcile still finds api-a, being
    // deleted, in a cache that has not seen it go.
    let (mut placed, fake, client) = with_api_a_placed().await;
    placed.vms[0].metadata.deletion_timestamp = Some(fixed_time());
    let mut host = placed.hosts[0].clone();
    host.status.get_or_insert_default().vms.clear();
    fake.insert(&format!("{HOSTS}/small-1"), serde_json::to_value(&host).unwrap());
    ok_or_wait(
        controller::host::reconcile(Arc::new(DeserializeGuard(Ok(host))), context(client, &placed, vec![])).await,
    );
    let status = &fake.body_of(&format!("PUT {HOSTS}/small-1/status")).unwrap()["status"];
    assert_eq!(status.get("vms"), None, "{status}");
    assert_eq!(status["summary"]["vmCount"], 0);
}

#[tokio::test]
async fn a_host_keeps_a_fresh_placement_its_cache_has_not_seen_and_drops_a_deleted_vm() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    fake.insert(&format!("{VMS}/fresh"), {
        let mut fresh = serde_json::to_value(&world.vms[0]).unwrap();
        fresh["metadata"]["name"] = json!("fresh");
        fresh
    });
    let mut host = world.hosts[0].clone();
    host.status =
        Some(serde_json::from_value(json!({"vms": ["catalyst-demo/fresh", "catalyst-demo/deleted"]})).unwrap());
    let ctx = context(client, &World { hosts: vec![host.clone()], vms: vec![], groups: vec![] }, vec![]);
    ok_or_wait(controller::host::reconcile(Arc::new(DeserializeGuard(Ok(host))), ctx).await);
    assert_eq!(
        fake.requests(),
        [format!("GET {VMS}/fresh"), format!("GET {VMS}/deleted"), format!("PUT {HOSTS}/small-1/status"),]
    );
    let status = &fake.body_of(&format!("PUT {HOSTS}/small-1/status")).unwrap()["status"];
    assert_eq!(status["vms"], json!(["catalyst-demo/fresh"]));
    // 8 vCPUs, the emulator thread and the console-log sidecar's 15m.
    assert_eq!(status["summary"]["cpu"], "9.015/30", "the unseen VM's cores count");
}

#[tokio::test]
async fn a_malformed_object_gets_a_warning_and_waits_for_a_change() {
    let world = world();
    let (fake, client) = FakeApi::start();
    let malformed: DeserializeGuard<CatalystVM> = serde_json::from_value(json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystVM",
        "metadata": {"name": "broken", "namespace": "catalyst-demo", "uid": "uid-broken"},
        "spec": {"cpu": "lots"}
    }))
    .unwrap();
    assert!(malformed.0.is_err());
    let action = controller::vm::reconcile(Arc::new(malformed), context(client, &world, vec![])).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(fake.requests(), [format!("POST {EVENTS}")]);
    let event = fake.body_of(&format!("POST {EVENTS}")).unwrap();
    assert_eq!(
        (&event["reason"], &event["type"], &event["regarding"]["name"]),
        (&json!("Malformed"), &json!("Warning"), &json!("broken"))
    );
}

#[test]
fn transient_errors_back_off_exponentially_per_object_and_reset_on_success() {
    let backoff = controller::Backoff::default();
    let (a, b) = (&ObjectKey::namespaced("ns", "a"), &ObjectKey::namespaced("ns", "b"));
    let delays: Vec<u64> = (0..4).map(|_| backoff.failed("CatalystVM", a).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8]);
    assert_eq!(backoff.failed("CatalystVM", b).as_secs(), 1, "per object");
    assert_eq!(backoff.failed("ServiceGroup", a).as_secs(), 1, "per kind: a group may share its VM's name");
    for _ in 0..20 {
        backoff.failed("CatalystVM", a);
    }
    assert_eq!(backoff.failed("CatalystVM", a), controller::Backoff::MAX);
    backoff.succeeded("CatalystVM", a);
    assert_eq!(backoff.failed("CatalystVM", a).as_secs(), 1);
    // Objects that are gone are forgotten; the others keep their count.
    backoff.failed("ServiceGroup", a);
    backoff.failures.prune(|kind, key| kind == "CatalystVM" && key == a);
    assert_eq!(backoff.failed("ServiceGroup", a).as_secs(), 1, "forgotten");
    assert_eq!(backoff.failed("CatalystVM", a).as_secs(), 2, "kept");
}

/// (API group, resource with subresource, verb) of a request path, as RBAC sees it.
fn authorization(request: &str) -> (String, String, String) {
    let (method, path) = request.split_once(' ').unwrap();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts[0] {
        "api" => (String::new(), &parts[2..]),
        _ => (parts[1].to_string(), &parts[3..]),
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    let resource = match rest {
        [resource, _name, sub] => format!("{resource}/{sub}"),
        [resource, ..] => resource.to_string(),
        [] => unreachable!(),
    };
    let verb = match (method, rest.len()) {
        ("GET", 1) => "list",
        ("GET", _) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => unreachable!(),
    };
    (group, resource, verb.to_string())
}

#[tokio::test]
async fn the_rbac_grants_exactly_the_calls_the_operator_makes() {
    // The minimal sample's VMs name a join Secret (`serve` holds it), so it is read too.
    let mut world = world();
    world.vms[1].metadata.finalizers = None;
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = || context(client.clone(), &world, vec![]);
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx()).await.unwrap();
    controller::vm::reconcile(vm_guard(&world, "api-b"), ctx()).await.unwrap();
    controller::group::reconcile(group_guard(&world, "api-a"), ctx()).await.unwrap();
    // One of api-a's replicas is on the wrong cores: it is recreated.
    let placed = reread(&fake, &world);
    controller::group::reconcile(group_guard(&placed, "api-a"), seeing(&client, &placed, vm_node_seen(true, 10)))
        .await
        .unwrap();
    // api-a's node joins and is verified against its instance, then labelled.
    let joined = reread(&fake, &world);
    let host = joined.vms[0].status.as_ref().unwrap().host.clone().unwrap();
    let node_of_host =
        joined.hosts.iter().find(|h| h.metadata.name.as_ref() == Some(&host)).unwrap().spec.node_name.clone();
    fake.insert(&format!("{INSTANCES}/api-a"), instance("api-a", &node_of_host, "10.244.3.17"));
    let node = claiming_node("api-a", "10.244.3.17");
    fake.insert("/api/v1/nodes/api-a.catalyst-demo", serde_json::to_value(&node).unwrap());
    controller::vm::reconcile(vm_guard(&joined, "api-a"), context(client.clone(), &joined, vec![node])).await.unwrap();
    let mut placed = reread(&fake, &world);
    placed.hosts[0].status.as_mut().unwrap().vms.push("catalyst-demo/unseen".into());
    ok_or_wait(controller::host::reconcile(Arc::new(DeserializeGuard(Ok(placed.hosts[0].clone()))), ctx()).await);
    let mut deleting = reread(&fake, &world);
    deleting.vms[0].metadata.deletion_timestamp = Some(fixed_time());
    let _ = controller::vm::reconcile(vm_guard(&deleting, "api-a"), context(client.clone(), &deleting, vec![])).await;
    controller::vm::reconcile(vm_guard(&deleting, "api-a"), context(client.clone(), &deleting, vec![])).await.unwrap();

    // A drain: a restart (api-a) and a live migration (api-c).
    let mut draining = placed_world([("api-a", "small-1"), ("api-b", "small-2"), ("api-c", "small-1")]);
    draining.hosts[0].spec.maintenance = true;
    let nodes: Vec<Node> = ["worker-1", "worker-2", "worker-3"].map(|n| host_node(n, true, false)).into();
    let (drain_fake, drain_client) = FakeApi::start();
    serve_running(&drain_fake, &draining);
    for _ in 0..12 {
        draining = round(&drain_fake, &drain_client, &draining, &nodes).await;
    }

    let observed: std::collections::BTreeSet<(String, String, String)> =
        fake.requests().iter().chain(&drain_fake.requests()).map(|r| authorization(r)).collect();
    let granted: std::collections::BTreeSet<(String, String, String)> = catalyst_operator::rbac::CLUSTER
        .iter()
        .flat_map(|g| g.verbs.iter().map(move |v| (g.group.to_string(), g.resource.to_string(), v.to_string())))
        .collect();
    let missing: Vec<_> = observed.difference(&granted).collect();
    assert!(missing.is_empty(), "calls the RBAC does not grant: {missing:?}");
    // What these tests cannot see, by design: the watches (list, watch), the create that
    // authorizes a server-side apply of a new object, and the recorder's aggregation patch.
    let by_design = |(group, resource, verb): &(String, String, String)| {
        verb == "list"
            || verb == "watch"
            || (verb == "create"
                && ["virtualmachines", "secrets", "services", "statefulsets"].contains(&resource.as_str()))
            || (group == "events.k8s.io" && verb == "patch")
    };
    let unused: Vec<_> = granted.difference(&observed).filter(|g| !by_design(g)).collect();
    assert!(unused.is_empty(), "grants no call needs: {unused:?}");
}

/// Issue 20, item 4: a VM-node must not run a kubelet newer than the API server, and kubeadm
/// joins a control plane of its own minor release or the next (the version skew policy): the
/// sample's v1.35 is refused by a v1.34 API server and by a v1.37 one, and nothing but the VM's
/// status is written; a v1.36 one takes it.
#[tokio::test]
async fn a_vm_whose_kubernetes_cannot_join_this_api_server_is_refused() {
    let world = world();
    for (server, refused) in
        [(34, Some("newer than the API server's v1.34")), (37, Some("use v1.36 or v1.37")), (36, None)]
    {
        let (fake, client) = FakeApi::start();
        serve(&fake, &world);
        let ctx = context(client, &world, vec![]);
        ctx.server_minor.store(server, std::sync::atomic::Ordering::Relaxed);
        controller::vm::reconcile(vm_guard(&world, "api-a"), ctx).await.unwrap();
        let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
        let ready =
            vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").cloned().unwrap();
        match refused {
            Some(why) => {
                assert_eq!(ready["reason"], "VersionSkew");
                assert!(ready["message"].as_str().unwrap().contains(why), "{ready}");
                let writes = [format!("PATCH {VMS}/api-a/status"), format!("POST {EVENTS}")];
                assert_eq!(fake.writes(), writes, "nothing but the status, and a Warning");
            }
            None => assert_ne!(ready["reason"], "VersionSkew"),
        }
    }
}

#[tokio::test]
async fn objects_of_namespaces_the_operator_does_not_manage_are_left_alone() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let mut ctx =
        Context::new(client.clone(), context(client, &world, vec![]).stores.clone(), Overhead::default(), None);
    ctx.namespaces = vec!["billing".into(), "telecom".into()];
    let ctx = Arc::new(ctx);
    let action = controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    controller::group::reconcile(group_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    assert_eq!(fake.requests(), Vec::<String>::new());
    // Hosts are cluster-scoped: every operator keeps their status.
    ok_or_wait(controller::host::reconcile(Arc::new(DeserializeGuard(Ok(world.hosts[0].clone()))), ctx).await);
    assert_eq!(fake.writes(), [format!("PUT {HOSTS}/small-1/status")]);
}

#[tokio::test]
async fn a_spec_change_kubevirt_holds_for_a_restart_is_reported() {
    let (settled, fake, client) = with_api_a_placed().await;
    let machine = format!("{MACHINES}/api-a");
    let mut live = fake.get(&machine).unwrap();
    live["status"] = json!({"printableStatus": "Running", "ready": true,
        "conditions": [{"type": "RestartRequired", "status": "True", "message": "a non-live-updatable field was changed"}]});
    fake.insert(&machine, live);
    let mut resized = settled;
    resized.vms[0].spec.cpu = 10;
    controller::vm::reconcile(vm_guard(&resized, "api-a"), context(client, &resized, vec![])).await.unwrap();
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    let restart =
        vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "RestartRequired").unwrap();
    assert_eq!((&restart["status"], &restart["reason"]), (&json!("True"), &json!("SpecChangePending")));
    assert!(restart["message"].as_str().unwrap().ends_with("a non-live-updatable field was changed"));
}

#[tokio::test]
async fn a_new_pin_on_a_placed_vm_is_reported_and_not_followed() {
    let (mut settled, fake, client) = with_api_a_placed().await;
    settled.vms[0].spec.host = Some("small-2".into());
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    assert_eq!(vm["status"]["host"], "small-1");
    let scheduled = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Scheduled").unwrap();
    assert_eq!(scheduled["reason"], "PinIgnored");
    let machine = fake.get(&format!("{MACHINES}/api-a")).unwrap();
    assert_eq!(machine["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"], "worker-1");
}

#[tokio::test]
async fn a_virtual_machine_that_cannot_start_fails_its_catalyst_vm() {
    let (settled, fake, client) = with_api_a_placed().await;
    let machine = format!("{MACHINES}/api-a");
    let mut live = fake.get(&machine).unwrap();
    live["status"] = json!({"printableStatus": "ErrorUnschedulable", "ready": false});
    fake.insert(&machine, live);
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    assert_eq!(vm["status"]["phase"], "Failed");
    let ready = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(
        (&ready["reason"], &ready["message"]),
        (&json!("VirtualMachineFailed"), &json!("VirtualMachine api-a is ErrorUnschedulable"))
    );
}

#[tokio::test]
async fn a_status_field_no_longer_true_is_removed_and_then_quiet() {
    let (mut settled, fake, client) = with_api_a_placed().await;
    // The VM's status named a node that has since gone away.
    let path = format!("{VMS}/api-a");
    let mut vm = fake.get(&path).unwrap();
    vm["status"]["nodeName"] = json!("api-a.catalyst-demo");
    fake.insert(&path, vm.clone());
    settled.vms[0] = serde_json::from_value(vm).unwrap();
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client.clone(), &settled, vec![])).await.unwrap();
    assert_eq!(fake.body_of(&format!("PATCH {VMS}/api-a/status")).unwrap()["status"]["nodeName"], Value::Null);
    let vm = fake.get(&path).unwrap();
    assert_eq!(vm["status"].get("nodeName"), None);
    settled.vms[0] = serde_json::from_value(vm).unwrap();
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    assert_eq!(fake.writes(), Vec::<String>::new(), "no write once the status says what is true");
}

#[tokio::test]
async fn a_resize_that_no_longer_fits_its_host_is_refused_and_the_vm_left_as_it_was() {
    let (mut settled, fake, client) = with_api_a_placed().await;
    settled.vms[0].spec.cpu = 30; // 31 cores with the emulator thread; small-1 offers 30
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client.clone(), &settled, vec![])).await.unwrap();
    assert_eq!(
        fake.writes(),
        [format!("PATCH {VMS}/api-a/status"), format!("POST {EVENTS}")],
        "no VirtualMachine write"
    );
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    let ready = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["reason"], "DoesNotFitHost");
    assert!(ready["message"].as_str().unwrap().contains("need 31.015 cores"), "{ready}");
    // The same size fits once it is within the host.
    settled.vms[0].spec.cpu = 20;
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&settled, "api-a"), context(client, &settled, vec![])).await.unwrap();
    assert!(fake.writes().contains(&format!("PATCH {MACHINES}/api-a")));
}

#[tokio::test]
async fn waits_requeue_soon_without_raising_the_backoff_and_only_failures_count_as_errors() {
    use catalyst_operator::controller::{Error, error_policy};
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::Error as Finalizer;
    use std::time::Duration;
    let world = world();
    let (_fake, client) = FakeApi::start();
    let ctx = context(client, &world, vec![]);
    let vm = vm_guard(&world, "api-a");
    let deleting = || {
        Error::Finalizer(Box::new(Finalizer::CleanupFailed(Error::WaitingForDeletion(ObjectKey::namespaced(
            "x", "api-a",
        )))))
    };
    let race = Error::PlacementRace { vm: ObjectKey::namespaced("x", "api-a"), host: "small-1".into() };
    for wait in [deleting(), race, deleting()] {
        assert_eq!(error_policy(vm.clone(), &wait, ctx.clone()), Action::requeue(Duration::from_secs(1)));
    }
    let failed = || {
        Error::ListHosts(kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "InternalError").with_code(500),
        )))
    };
    // The first real failure starts the backoff at its first step: the waits did not raise it.
    assert_eq!(error_policy(vm.clone(), &failed(), ctx.clone()), Action::requeue(Duration::from_secs(1)));
    assert_eq!(error_policy(vm.clone(), &failed(), ctx.clone()), Action::requeue(Duration::from_secs(2)));
    // A host's status write that lost to another (409) is a wait too: the one convention.
    let conflict = Error::Conflict { kind: "CatalystHost", name: "small-1".into() };
    assert_eq!(error_policy(vm.clone(), &conflict, ctx.clone()), Action::requeue(Duration::from_secs(1)));
    let started = std::time::Instant::now();
    ctx.reconciled("CatalystVM", started, &Err::<(), _>(deleting()));
    ctx.reconciled("CatalystVM", started, &Err::<(), _>(failed()));
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains(r#"catalyst_reconcile_errors_total{kind="CatalystVM",error="list_hosts"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains("waiting_for_deletion") && !metrics.contains("placement_race"), "{metrics}");
    assert!(!metrics.contains(r#"error="conflict""#), "{metrics}");
    for line in [
        r#"catalyst_reconciles_total{kind="CatalystVM",outcome="wait"} 1"#,
        r#"catalyst_reconciles_total{kind="CatalystVM",outcome="error"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
}

const INSTANCES: &str = "/apis/kubevirt.io/v1/namespaces/catalyst-demo/virtualmachineinstances";

/// A Ready node that claims VM `vm` (its kubelet set `catalyst.io/vm`), with InternalIP `address`.
fn claiming_node(vm: &str, address: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("{vm}.catalyst-demo"), "labels": {"catalyst.io/vm": format!("{vm}.catalyst-demo")}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": address}]}
    }))
    .unwrap()
}

/// KubeVirt's instance of VM `vm`, running on `host_node` with a bridged interface at `address`.
fn instance(vm: &str, host_node: &str, address: &str) -> serde_json::Value {
    json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": vm, "namespace": "catalyst-demo"},
        "spec": {},
        "status": {"phase": "Running", "nodeName": host_node, "interfaces": [{"name": "default", "ipAddress": address}]}
    })
}

/// Issue 10, item 5: the kubelet's own label only names a candidate; the operator sets the
/// node-restriction label the replicas select on once the node matches the VM's instance, and
/// never for a node whose address is not the instance's.
#[tokio::test]
async fn a_node_is_labelled_for_its_vms_replicas_only_once_it_matches_the_vms_instance() {
    let (placed, fake, client) = with_api_a_placed().await;
    let host = fake.get(&format!("{VMS}/api-a")).unwrap()["status"]["host"].as_str().unwrap().to_string();
    let host_node = placed.hosts.iter().find(|h| h.metadata.name.as_deref() == Some(host.as_str())).unwrap();
    let host_node = host_node.spec.node_name.clone();

    // An impostor: registered under the VM's name, from another address.
    fake.insert(&format!("{INSTANCES}/api-a"), instance("api-a", &host_node, "10.244.3.17"));
    let impostor = claiming_node("api-a", "192.168.9.9");
    fake.insert("/api/v1/nodes/api-a.catalyst-demo", serde_json::to_value(&impostor).unwrap());
    let action =
        controller::vm::reconcile(vm_guard(&placed, "api-a"), context(client.clone(), &placed, vec![impostor])).await;
    assert_eq!(action.unwrap(), kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(15)));
    assert!(fake.requests().iter().all(|r| !r.starts_with("PATCH /api/v1/nodes")), "{:?}", fake.requests());
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    let verified = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "NodeVerified").unwrap();
    assert_eq!((&verified["status"], &verified["reason"]), (&json!("False"), &json!("AddressMismatch")));
    let warning = fake.body_of(&format!("POST {EVENTS}")).unwrap();
    assert_eq!(warning["reason"], "AddressMismatch");

    // The VM itself: its address is the instance's, on the VM's host.
    fake.forget_requests();
    let node = claiming_node("api-a", "10.244.3.17");
    fake.insert("/api/v1/nodes/api-a.catalyst-demo", serde_json::to_value(&node).unwrap());
    let placed = reread(&fake, &placed);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), context(client.clone(), &placed, vec![node])).await.unwrap();
    let label = fake.body_of("PATCH /api/v1/nodes/api-a.catalyst-demo").unwrap();
    assert_eq!(
        label["metadata"]["labels"],
        json!({"catalyst.io.node-restriction.kubernetes.io/vm": "api-a.catalyst-demo"}),
        "one label, nothing else"
    );
    let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
    let verified = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "NodeVerified").unwrap();
    assert_eq!((&verified["status"], &verified["reason"]), (&json!("True"), &json!("Verified")));

    // Labelled, it is not checked again.
    fake.forget_requests();
    let labelled: Node = serde_json::from_value(fake.get("/api/v1/nodes/api-a.catalyst-demo").unwrap()).unwrap();
    let placed = reread(&fake, &placed);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), context(client, &placed, vec![labelled])).await.unwrap();
    assert!(fake.requests().iter().all(|r| !r.contains("virtualmachineinstances") && !r.contains("/nodes")));
}

const TOKENS: &str = "/api/v1/namespaces/kube-system/secrets/bootstrap-token-";

/// A context that mints tokens, whose cache of kube-system's tokens (and nodes) is what the
/// fake server holds now.
fn minting(fake: &FakeApi, client: &kube::Client, world: &World, nodes: Vec<Node>) -> Arc<Context> {
    let mut ctx = Arc::try_unwrap(context(client.clone(), world, nodes)).ok().unwrap();
    let tokens = fake
        .paths()
        .into_iter()
        .filter(|path| path.starts_with(TOKENS))
        .map(|path| serde_json::from_value::<PartialObjectMeta<Secret>>(fake.get(&path).unwrap()).unwrap());
    ctx.stores.tokens = Some(store(tokens));
    ctx.mint_join_tokens = true;
    Arc::new(ctx)
}

/// Its VirtualMachine as KubeVirt reports it: `printableStatus`.
fn kubevirt_says(fake: &FakeApi, vm: &str, printable: &str) {
    let path = format!("{MACHINES}/{vm}");
    let mut machine = fake.get(&path).unwrap();
    machine["status"] = json!({"printableStatus": printable, "ready": printable == "Running"});
    fake.insert(&path, machine);
}

/// Issue 20, items 2 and 3: each VM joins with a bootstrap token of its own, of Catalyst's group
/// (never kubeadm's, whose certificates are auto-approved for any node), in the API server's
/// bootstrap-token format; the VM's cloud-init keeps it; its Secret in kube-system exists only
/// while the VM's instance runs and its node is not verified and Ready, made again for a
/// restart from a fresh disk, and goes with the VM.
#[tokio::test]
async fn each_vm_joins_with_a_token_of_its_own_that_lives_only_while_it_joins() {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::vm::reconcile(vm_guard(&world, "api-a"), minting(&fake, &client, &world, vec![])).await.unwrap();
    // Not running yet: the cloud-init keeps a token, and no token Secret exists.
    let cloud_init: Secret = serde_json::from_value(fake.get(&format!("{SECRETS}/api-a-cloud-init")).unwrap()).unwrap();
    let own = String::from_utf8(cloud_init.data.as_ref().unwrap()["joinToken"].0.clone()).unwrap();
    let userdata = String::from_utf8(cloud_init.data.as_ref().unwrap()["userdata"].0.clone()).unwrap();
    assert!(userdata.contains(&format!("token: {own}")), "{userdata}");
    assert!(!userdata.contains("token: token"), "the shared token of the join Secret is not used");
    assert!(fake.requests().iter().all(|r| !r.contains(TOKENS)), "{:?}", fake.requests());
    let (id, secret) = own.split_once('.').unwrap();
    let token_path = format!("{TOKENS}{id}");

    // Running: the token Secret is made, valid for two hours.
    kubevirt_says(&fake, "api-a", "Running");
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    let token: Secret = serde_json::from_value(fake.get(&token_path).unwrap()).unwrap();
    let value = |key: &str| String::from_utf8(token.data.as_ref().unwrap()[key].0.clone()).unwrap();
    assert_eq!(token.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!((value("token-id").as_str(), value("token-secret").as_str()), (id, secret));
    assert_eq!(value("expiration"), "2026-09-21T16:13:20Z", "two hours after the (fixed) clock");
    assert_eq!(value("auth-extra-groups"), "system:bootstrappers:catalyst:vm-nodes");
    assert_eq!(token.metadata.labels.as_ref().unwrap()["catalyst.io/join-token-of"], "api-a.catalyst-demo");

    // Again, with the token in the cache and still valid: nothing written, nothing read.
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    assert!(fake.requests().iter().all(|r| !r.contains("/kube-system/")), "{:?}", fake.requests());

    // Joined (verified and Ready): the token goes.
    let mut node = claiming_node("api-a", "10.244.3.17");
    kube::ResourceExt::labels_mut(&mut node)
        .insert("catalyst.io.node-restriction.kubernetes.io/vm".into(), "api-a.catalyst-demo".into());
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![node.clone()]))
        .await
        .unwrap();
    assert!(fake.get(&token_path).is_none(), "deleted once the node is verified and Ready");

    // The VM restarts from a fresh containerDisk: its node is NotReady, its instance runs, and
    // the same token is made again for the new join.
    node.status.as_mut().unwrap().conditions =
        Some(vec![serde_json::from_value(json!({"type": "Ready", "status": "False"})).unwrap()]);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![node])).await.unwrap();
    let remade: Secret = serde_json::from_value(fake.get(&token_path).unwrap()).unwrap();
    assert_eq!(remade.data.as_ref().unwrap()["token-secret"].0, secret.as_bytes());

    // Halted: no instance runs, so no token.
    kubevirt_says(&fake, "api-a", "Stopped");
    let halted = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&halted, "api-a"), minting(&fake, &client, &halted, vec![])).await.unwrap();
    assert!(fake.get(&token_path).is_none(), "deleted while the VM is stopped");

    // Deleted with the VM.
    kubevirt_says(&fake, "api-a", "Running");
    let running = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&running, "api-a"), minting(&fake, &client, &running, vec![])).await.unwrap();
    let mut deleting = reread(&fake, &world);
    deleting.vms[0].metadata.deletion_timestamp = Some(fixed_time());
    let _ = controller::vm::reconcile(vm_guard(&deleting, "api-a"), minting(&fake, &client, &deleting, vec![])).await;
    controller::vm::reconcile(vm_guard(&deleting, "api-a"), minting(&fake, &client, &deleting, vec![])).await.unwrap();
    assert!(fake.requests().contains(&format!("DELETE {token_path}")), "{:?}", fake.requests());
}

/// api-a placed, running and its token made five minutes before the fixed clock, with a
/// minting operator: the world, the fake server, its client and the token's path.
async fn with_an_old_token() -> (World, FakeApi, kube::Client, String) {
    let world = world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::vm::reconcile(vm_guard(&world, "api-a"), minting(&fake, &client, &world, vec![])).await.unwrap();
    kubevirt_says(&fake, "api-a", "Running");
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    let token_path = fake.paths().into_iter().find(|p| p.starts_with(TOKENS)).unwrap();
    let mut token = fake.get(&token_path).unwrap();
    token["metadata"]["creationTimestamp"] = json!("2026-09-21T14:08:20Z");
    fake.insert(&token_path, token);
    (world, fake, client, token_path)
}

/// Issue 20, item 3: a token that kube-controller-manager's bootstrapsigner has not signed a
/// minute after it was made says so, since `kubeadm join`'s discovery waits for that signature
/// in `kube-public/cluster-info` (kubernetes `pkg/controller/bootstrap/bootstrapsigner.go`, off
/// unless kube-controller-manager runs it, as kubeadm asks).
#[tokio::test]
async fn a_token_the_bootstrapsigner_never_signs_is_reported() {
    let (world, fake, client, token_path) = with_an_old_token().await;
    let id = token_path.trim_start_matches(TOKENS).to_string();
    let joined_reason = |fake: &FakeApi| {
        let vm = fake.get(&format!("{VMS}/api-a")).unwrap();
        let joined = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "NodeJoined").cloned();
        joined.map(|c| (c["reason"].as_str().unwrap().to_string(), c["message"].as_str().unwrap().to_string())).unwrap()
    };
    // No cluster-info at all: not a cluster kubeadm made.
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    assert_eq!(joined_reason(&fake).0, "NoClusterInfo");
    // cluster-info without this token's signature.
    let cluster_info = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    fake.insert(
        cluster_info,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info"},
                                     "data": {"kubeconfig": "..."}}),
    );
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    let (reason, message) = joined_reason(&fake);
    assert_eq!(reason, "TokenNotSigned");
    assert!(
        message.contains(&format!("bootstrap token {id} for 300s")) && message.contains("bootstrapsigner"),
        "{message}"
    );
    // Signed: joining, and the signature is not looked for again.
    fake.insert(
        cluster_info,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info"},
                                     "data": {"kubeconfig": "...", format!("jws-kubeconfig-{id}"): "sig"}}),
    );
    let ctx = minting(&fake, &client, &placed, vec![]);
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), ctx.clone()).await.unwrap();
    assert_eq!(joined_reason(&fake).0, "Joining");
    fake.forget_requests();
    controller::vm::reconcile(vm_guard(&reread(&fake, &world), "api-a"), ctx).await.unwrap();
    assert!(fake.requests().iter().all(|r| !r.contains("cluster-info")), "{:?}", fake.requests());
}

/// The Roles of minted tokens grant exactly their calls: in kube-system the token writes (the
/// server-side apply, which a new Secret authorizes as `create`, and the deletion) and the watch
/// of them; in kube-public the read of cluster-info.
#[tokio::test]
async fn the_join_token_roles_grant_exactly_the_token_calls() {
    let (world, fake, client, _) = with_an_old_token().await;
    let placed = reread(&fake, &world);
    controller::vm::reconcile(vm_guard(&placed, "api-a"), minting(&fake, &client, &placed, vec![])).await.unwrap();
    let mut deleting = reread(&fake, &world);
    deleting.vms[0].metadata.deletion_timestamp = Some(fixed_time());
    let _ = controller::vm::reconcile(vm_guard(&deleting, "api-a"), minting(&fake, &client, &deleting, vec![])).await;
    controller::vm::reconcile(vm_guard(&deleting, "api-a"), minting(&fake, &client, &deleting, vec![])).await.unwrap();
    let observed = |namespace: &str, watched: &[&str]| -> std::collections::BTreeSet<(String, String, String)> {
        let by_design = watched.iter().map(|verb| (String::new(), "secrets".to_string(), verb.to_string()));
        fake.requests()
            .iter()
            .filter(|r| r.contains(&format!("/namespaces/{namespace}/")))
            .map(|r| authorization(r))
            .chain(by_design)
            .collect()
    };
    let granted = |grants: &[catalyst_operator::rbac::Grant]| -> std::collections::BTreeSet<(String, String, String)> {
        grants
            .iter()
            .flat_map(|g| g.verbs.iter().map(move |v| (g.group.to_string(), g.resource.to_string(), v.to_string())))
            .collect()
    };
    // The watch (list, watch) is not a reconcile's call; a new Secret's apply authorizes as create.
    assert_eq!(observed("kube-system", &["list", "watch", "create"]), granted(catalyst_operator::rbac::JOIN_TOKENS));
    assert_eq!(observed("kube-public", &[]), granted(catalyst_operator::rbac::CLUSTER_INFO));
}

/// api-a's VM-node as its agent reports it: replica api-a-2 on the shared pool (the kubelet
/// re-admitted it there, as seen on a real guest), heartbeat `age` seconds before the fixed
/// clock; and the node, Ready or not.
fn vm_node_seen(ready: bool, age: i64) -> (catalyst_api::CatalystNodeReport, Node) {
    let heartbeat = fixed_time().0 - k8s_openapi::jiff::SignedDuration::from_secs(age);
    let report = serde_json::from_value(json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystNodeReport", "metadata": {"name": "api-a.catalyst-demo"},
        "spec": {"allocatableCpus": "1-7", "heartbeatTime": heartbeat.to_string(),
                 "pods": [{"namespace": "catalyst-demo", "name": "api-a-1", "containers": [{"name": "api-a", "cpus": "1-2"}]},
                          {"namespace": "catalyst-demo", "name": "api-a-2", "containers": [{"name": "api-a"}]},
                          {"namespace": "catalyst-demo", "name": "api-a-3", "containers": [{"name": "api-a", "cpus": "5-6"}]}]}
    }))
    .unwrap();
    let mut node = claiming_node("api-a", "10.244.3.17");
    if !ready {
        node.status.as_mut().unwrap().conditions =
            Some(vec![serde_json::from_value(json!({"type": "Ready", "status": "Unknown"})).unwrap()]);
    }
    (report, node)
}

fn seeing(client: &kube::Client, world: &World, seen: (catalyst_api::CatalystNodeReport, Node)) -> Arc<Context> {
    let mut ctx = Arc::try_unwrap(context(client.clone(), world, vec![seen.1])).ok().unwrap();
    ctx.stores.reports = store([seen.0]);
    Arc::new(ctx)
}

fn pinned_of(fake: &FakeApi) -> (String, String) {
    let group = fake.get(&format!("{GROUPS}/api-a")).unwrap();
    let pinned =
        group["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Pinned").cloned().unwrap();
    (pinned["status"].as_str().unwrap().to_string(), pinned["reason"].as_str().unwrap().to_string())
}

/// Issue 20, item 11: a replica the kubelet put on the shared pool is recreated through the
/// eviction API, with an event, and not again before a pause; with `repair: Report` it is only
/// reported.
#[tokio::test]
async fn a_replica_on_the_wrong_cores_is_recreated_once_then_after_a_pause() {
    let (world, fake, client) = with_api_a_placed().await;
    let ctx = seeing(&client, &world, vm_node_seen(true, 10));
    controller::group::reconcile(group_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    assert_eq!(pinned_of(&fake), ("False".to_string(), "NotExclusive".to_string()));
    let eviction = "POST /api/v1/namespaces/catalyst-demo/pods/api-a-2/eviction".to_string();
    assert!(fake.requests().contains(&eviction), "{:?}", fake.requests());
    let reasons: Vec<Value> = fake.bodies_of(&format!("POST {EVENTS}")).iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(reasons, [json!("RecreatingUnpinnedReplica"), json!("NotExclusive")], "the repair and the warning");
    fake.forget_requests();
    controller::group::reconcile(group_guard(&reread(&fake, &world), "api-a"), ctx).await.unwrap();
    assert!(!fake.requests().contains(&eviction), "not again within the pause: {:?}", fake.requests());

    let mut reporting = world;
    reporting.groups[0].spec.pinning.repair = catalyst_api::group::Repair::Report;
    let (fake, client) = FakeApi::start();
    serve(&fake, &reporting);
    controller::vm::reconcile(vm_guard(&reporting, "api-a"), context(client.clone(), &reporting, vec![]))
        .await
        .unwrap();
    let reporting = reread(&fake, &reporting);
    let ctx = seeing(&client, &reporting, vm_node_seen(true, 10));
    controller::group::reconcile(group_guard(&reporting, "api-a"), ctx).await.unwrap();
    assert_eq!(pinned_of(&fake).1, "NotExclusive");
    assert!(fake.requests().iter().all(|r| !r.ends_with("/eviction")), "{:?}", fake.requests());
}

/// Issue 20, item 12: a verdict from a node that is not Ready, or from a report its agent no
/// longer renews, is Unknown, and nothing is recreated on its word.
#[tokio::test]
async fn a_dead_nodes_report_gives_an_unknown_verdict() {
    for (seen, reason) in [(vm_node_seen(false, 10), "NodeNotReady"), (vm_node_seen(true, 600), "StaleReport")] {
        let (world, fake, client) = with_api_a_placed().await;
        controller::group::reconcile(group_guard(&world, "api-a"), seeing(&client, &world, seen)).await.unwrap();
        assert_eq!(pinned_of(&fake), ("Unknown".to_string(), reason.to_string()));
        assert!(fake.requests().iter().all(|r| !r.ends_with("/eviction")), "{:?}", fake.requests());
    }
}

/// The minimal sample on hosts of two 16-CPU cells with 16 1Gi pages each (2 CPUs reserved on
/// cell 0), its two VMs NUMA-passthrough with their memory in 1Gi pages: api-a's 24 pages
/// overflow the cell its 9 CPUs fit, api-b's 16 do not.
fn numa_world() -> World {
    let mut world = world();
    for host in &mut world.hosts {
        let cell = json!({"cpu": 16, "memory": "64Gi"});
        host.spec.numa = serde_json::from_value(json!([cell, cell])).unwrap();
        host.spec.hugepages.pages_1gi = 32;
    }
    for (vm, memory) in world.vms.iter_mut().zip(["24Gi", "16Gi"]) {
        vm.spec.memory = k8s_openapi::apimachinery::pkg::api::resource::Quantity(memory.into());
        vm.spec.hugepages = Some(catalyst_api::vm::HugepageSize::OneGibibyte);
        vm.spec.numa_passthrough = true;
    }
    world.groups.clear();
    world
}

/// Issue 21: the operator places by the same rule as `plan`: a passthrough VM whose guest
/// memory would be bound to a cell that cannot hold it is Unschedulable, with the cells and the
/// fix; one that fits is placed.
#[tokio::test]
async fn a_passthrough_vm_is_placed_only_where_its_cells_hold_its_memory() {
    let world = numa_world();
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    let ctx = context(client, &world, vec![]);
    controller::vm::reconcile(vm_guard(&world, "api-a"), ctx.clone()).await.unwrap();
    let refused = fake.get(&format!("{VMS}/api-a")).unwrap();
    let scheduled =
        refused["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Scheduled").unwrap().clone();
    assert_eq!(scheduled["reason"], "Unschedulable");
    let message = scheduled["message"].as_str().unwrap();
    assert!(message.contains("even alone, catalyst-demo/api-a does not start"), "{message}");
    assert!(message.contains("asks 24 1Gi pages of cell 0, which has 16 free"), "{message}");
    assert!(message.contains("drop numaPassthrough"), "{message}");
    assert!(fake.writes().iter().all(|w| !w.starts_with(&format!("PATCH {MACHINES}"))), "{:?}", fake.writes());
    controller::vm::reconcile(vm_guard(&world, "api-b"), ctx).await.unwrap();
    assert!(fake.writes().contains(&format!("PATCH {MACHINES}/api-b")), "{:?}", fake.writes());
}

/// A host node's report: cells 0-15 and 16-31 with `pools` 1Gi pages, and api-b's launcher
/// holding `cpus`.
fn host_report(pools: [u64; 2], cpus: &str) -> catalyst_api::CatalystNodeReport {
    let heartbeat = fixed_time().0 - k8s_openapi::jiff::SignedDuration::from_secs(10);
    let pool = |total: u64| json!([{"size": "1Gi", "total": total, "free": 0}]);
    serde_json::from_value(json!({
        "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystNodeReport", "metadata": {"name": "worker-1"},
        "spec": {"allocatableCpus": "2-31", "heartbeatTime": heartbeat.to_string(),
                 "numa": [{"id": 0, "cpus": "0-15", "hugepages": pool(pools[0])},
                          {"id": 1, "cpus": "16-31", "hugepages": pool(pools[1])}],
                 "pods": [{"namespace": "catalyst-demo", "name": "virt-launcher-api-b-x7k2p",
                           "containers": [{"name": "compute", "cpus": cpus}]}]}
    }))
    .unwrap()
}

/// Issue 21, item 5: a passthrough VM's real cells and pools, from its host's report, against
/// the plan's: `NumaPlaced` True within them; False with a Warning when the host boots other
/// pools than the plan counts.
#[tokio::test]
async fn a_passthrough_vms_real_cells_and_pools_are_compared_with_the_plan() {
    let mut world = numa_world();
    world.hosts.truncate(1);
    world.vms.retain(|vm| vm.metadata.name.as_deref() == Some("api-b"));
    let (fake, client) = FakeApi::start();
    serve(&fake, &world);
    controller::vm::reconcile(vm_guard(&world, "api-b"), context(client.clone(), &world, vec![])).await.unwrap();
    let placed = reread(&fake, &world);
    let launcher: PartialObjectMeta<k8s_openapi::api::core::v1::Pod> = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "virt-launcher-api-b-x7k2p", "namespace": "catalyst-demo",
                     "annotations": {"kubevirt.io/domain": "api-b"}}
    }))
    .unwrap();
    let host_node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    let numa_placed = |pools: [u64; 2]| {
        let mut ctx = Arc::try_unwrap(context(client.clone(), &placed, vec![host_node.clone()])).ok().unwrap();
        ctx.stores.reports = store([host_report(pools, "2-10")]);
        ctx.stores.launchers = Arc::new(controller::index::LaunchersByVm::launchers().of([&launcher]));
        let ctx = Arc::new(ctx);
        let fake = fake.clone();
        let placed = &placed;
        async move {
            fake.forget_requests();
            controller::vm::reconcile(vm_guard(placed, "api-b"), ctx).await.unwrap();
            let vm = fake.get(&format!("{VMS}/api-b")).unwrap();
            let condition = vm["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "NumaPlaced");
            let warnings: Vec<Value> =
                fake.bodies_of(&format!("POST {EVENTS}")).iter().map(|e| e["reason"].clone()).collect();
            (condition.cloned().unwrap(), warnings)
        }
    };
    let (within, warnings) = numa_placed([16, 16]).await;
    assert_eq!((&within["status"], &within["reason"]), (&json!("True"), &json!("WithinPools")), "{within}");
    assert_eq!(within["message"], "its vCPUs are on NUMA cells 0 and its 16 1Gi pages within their pools, as planned");
    assert!(warnings.is_empty(), "{warnings:?}");
    let (short, warnings) = numa_placed([8, 24]).await;
    assert_eq!((&short["status"], &short["reason"]), (&json!("False"), &json!("PoolsDiffer")), "{short}");
    assert!(short["message"].as_str().unwrap().starts_with("NUMA cell 0 holds 8 1Gi pages, the plan counts 16"));
    assert_eq!(warnings, [json!("PoolsDiffer")]);
}

const MIGRATIONS: &str = "/apis/kubevirt.io/v1/namespaces/catalyst-demo/virtualmachineinstancemigrations";

/// A Ready node of a host, fenced (`node.kubernetes.io/out-of-service`) or not.
fn host_node(name: &str, ready: bool, fenced: bool) -> Node {
    let taints = if fenced {
        json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}]}
    }))
    .unwrap()
}

/// Issue 22's world: the minimal sample on three hosts, each VM placed and running where
/// `on` says (status, ledger and a running instance), plus `api-c` (no spread group, on a
/// Multus network, so it can migrate) on small-1.
fn placed_world(on: [(&str, &str); 3]) -> World {
    let mut world = world();
    let mut third = world.hosts[0].clone();
    third.metadata.name = Some("small-3".into());
    third.metadata.uid = Some("uid-small-3".into());
    third.spec.node_name = "worker-3".into();
    world.hosts.push(third);
    let mut api_c = world.vms[0].clone();
    api_c.metadata.name = Some("api-c".into());
    api_c.metadata.uid = Some("uid-api-c".into());
    api_c.spec.placement.spread_group = None;
    api_c.spec.network.multus_network_name = Some("hosts-lan".into());
    world.vms.push(api_c);
    world.groups.clear();
    for (vm, host) in on {
        let vm = world.vms.iter_mut().find(|v| v.metadata.name.as_deref() == Some(vm)).unwrap();
        vm.status = Some(serde_json::from_value(json!({"host": host, "phase": "Ready"})).unwrap());
        let key = format!("catalyst-demo/{}", vm.metadata.name.clone().unwrap());
        let host = world.hosts.iter_mut().find(|h| h.metadata.name.as_deref() == Some(host)).unwrap();
        host.status.get_or_insert_with(Default::default).vms.push(key);
    }
    world
}

fn node_of(world: &World, host: &str) -> String {
    world.hosts.iter().find(|h| h.metadata.name.as_deref() == Some(host)).unwrap().spec.node_name.clone()
}

/// Plays KubeVirt for every VM: LiveUpdate carries the VirtualMachine's node selector into the
/// instance; a migration moves the instance to that node and succeeds; a deleted instance comes
/// back on the node the VirtualMachine selects.
fn play_kubevirt(fake: &FakeApi, world: &World) {
    for vm in &world.vms {
        let name = vm.metadata.name.clone().unwrap();
        let selected = fake.get(&format!("{MACHINES}/{name}")).and_then(|m| {
            m["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"].as_str().map(String::from)
        });
        let path = format!("{INSTANCES}/{name}");
        match (fake.get(&path), selected) {
            (None, Some(node)) => {
                let mut running = instance(&name, &node, "10.244.3.17");
                running["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node});
                fake.insert(&path, running);
            }
            (Some(mut instance), Some(node)) => {
                instance["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node});
                let migration = format!("{MIGRATIONS}/{name}-catalyst-move");
                if let Some(mut migration_object) = fake.get(&migration) {
                    instance["status"]["nodeName"] = json!(node);
                    migration_object["status"] = json!({"phase": "Succeeded"});
                    fake.insert(&migration, migration_object);
                }
                fake.insert(&path, instance);
            }
            _ => {}
        }
    }
}

/// A reconcile that succeeded or waits: a host whose status write lost to another (409) is
/// looked at again, as the controller does.
fn ok_or_wait(result: Result<kube::runtime::controller::Action, controller::Error>) {
    if let Err(error) = result {
        assert!(error.is_wait(), "{error}");
    }
}

/// One round: every host reconciled, then every VM, with KubeVirt played after each VM;
/// returns the world as it then is.
async fn round(fake: &FakeApi, client: &kube::Client, world: &World, nodes: &[Node]) -> World {
    for host in &world.hosts {
        let ctx = context(client.clone(), world, nodes.to_vec());
        // A host read before another host's write may lose its own (409): a wait, not a failure.
        ok_or_wait(controller::host::reconcile(Arc::new(DeserializeGuard(Ok(host.clone()))), ctx).await);
    }
    let mut world = reread(fake, world);
    for name in world.vms.iter().map(|v| v.metadata.name.clone().unwrap()).collect::<Vec<_>>() {
        let ctx = context(client.clone(), &world, nodes.to_vec());
        let _ = controller::vm::reconcile(vm_guard(&world, &name), ctx).await;
        play_kubevirt(fake, &world);
        world = reread(fake, &world);
    }
    world
}

/// The reasons of every event published, the hosts' (in the default namespace) included.
fn event_reasons(fake: &FakeApi) -> Vec<Value> {
    let posts: Vec<String> =
        fake.requests().into_iter().filter(|r| r.starts_with("POST ") && r.ends_with("/events")).collect();
    posts.iter().flat_map(|post| fake.bodies_of(post)).map(|e| e["reason"].clone()).collect()
}

fn hosts_of(world: &World) -> Vec<(String, Option<String>)> {
    world
        .vms
        .iter()
        .map(|vm| (vm.metadata.name.clone().unwrap(), vm.status.as_ref().and_then(|s| s.host.clone())))
        .collect()
}

fn serve_running(fake: &FakeApi, world: &World) {
    serve(fake, world);
    for vm in &world.vms {
        let name = vm.metadata.name.clone().unwrap();
        let host = vm.status.as_ref().unwrap().host.clone().unwrap();
        let mut running = instance(&name, &node_of(world, &host), "10.244.3.17");
        running["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node_of(world, &host)});
        fake.insert(&format!("{INSTANCES}/{name}"), running);
    }
}

/// Issue 22: a drain with room moves every VM off the host, one at a time, each as its
/// strategy says (api-a bridged on the pod network restarts; api-c on a Multus network live-
/// migrates, once LiveUpdate carried its new selector into its instance), and each stays in
/// its old host's ledger until it runs on the new one.
#[tokio::test]
async fn a_drain_with_room_moves_every_vm_one_at_a_time() {
    let mut world = placed_world([("api-a", "small-1"), ("api-b", "small-2"), ("api-c", "small-1")]);
    world.hosts[0].spec.maintenance = true;
    let nodes: Vec<Node> = ["worker-1", "worker-2", "worker-3"].map(|n| host_node(n, true, false)).into();
    let (fake, client) = FakeApi::start();
    serve_running(&fake, &world);
    let mut most_moving = 0;
    for _ in 0..12 {
        world = round(&fake, &client, &world, &nodes).await;
        let moving = world.vms.iter().filter(|v| v.status.as_ref().is_some_and(|s| s.moving.is_some())).count();
        most_moving = most_moving.max(moving);
        // A moving VM holds its place in both ledgers.
        for vm in world.vms.iter().filter(|v| v.status.as_ref().is_some_and(|s| s.moving.is_some())) {
            let key = format!("catalyst-demo/{}", vm.metadata.name.clone().unwrap());
            let old = vm.status.as_ref().unwrap().host.clone().unwrap();
            let old_ledger = &world.hosts.iter().find(|h| h.metadata.name.as_deref() == Some(&old)).unwrap();
            assert!(
                old_ledger.status.as_ref().unwrap().vms.contains(&key),
                "{key} left {old}'s ledger before it moved"
            );
        }
    }
    assert_eq!(most_moving, 1, "one at a time");
    // api-a may not join api-b (their spread group); api-c takes the tightest host.
    assert_eq!(
        hosts_of(&world),
        [
            ("api-a".into(), Some("small-3".into())),
            ("api-b".into(), Some("small-2".into())),
            ("api-c".into(), Some("small-2".into()))
        ]
    );
    let drained = world.hosts[0].status.as_ref().unwrap();
    assert!(drained.vms.is_empty(), "{:?}", drained.vms);
    assert_eq!(drained.evacuation.as_ref().unwrap().state, "Complete");
    assert!(drained.conditions.iter().any(|c| c.type_ == "Evacuated" && c.status == "True"));
    assert_eq!(world.hosts[1].status.as_ref().unwrap().vms, ["catalyst-demo/api-b", "catalyst-demo/api-c"]);
    assert_eq!(world.hosts[2].status.as_ref().unwrap().vms, ["catalyst-demo/api-a"]);
    // api-c went by a migration, api-a by a restart.
    let requests = fake.requests();
    assert!(requests.contains(&format!("POST {MIGRATIONS}")), "{requests:?}");
    assert!(requests.contains(&format!("DELETE {INSTANCES}/api-a")), "{requests:?}");
    assert!(!requests.contains(&format!("DELETE {INSTANCES}/api-c")), "api-c was not restarted: {requests:?}");
    let reasons = event_reasons(&fake);
    assert!(reasons.contains(&json!("Moved")) && reasons.contains(&json!("Evacuated")), "{reasons:?}");
}

/// Issue 22: a drain without room is blocked and says why; nothing moves.
#[tokio::test]
async fn a_drain_without_room_is_blocked_and_says_why() {
    let mut world = placed_world([("api-a", "small-1"), ("api-b", "small-2"), ("api-c", "small-2")]);
    world.hosts.truncate(2);
    world.hosts[0].spec.maintenance = true;
    let nodes: Vec<Node> = ["worker-1", "worker-2"].map(|n| host_node(n, true, false)).into();
    let (fake, client) = FakeApi::start();
    serve_running(&fake, &world);
    for _ in 0..3 {
        world = round(&fake, &client, &world, &nodes).await;
    }
    assert_eq!(hosts_of(&world)[0], ("api-a".into(), Some("small-1".into())));
    let evacuation = world.hosts[0].status.as_ref().unwrap().evacuation.clone().unwrap();
    assert_eq!((evacuation.state.as_str(), evacuation.remaining), ("Blocked", 1));
    assert!(evacuation.blocked[0].reason.contains("spread group catalyst-demo/api"), "{evacuation:?}");
    let reasons = event_reasons(&fake);
    assert!(reasons.contains(&json!("EvacuationBlocked")), "{reasons:?}");
    assert!(fake.requests().iter().all(|r| !r.starts_with(&format!("DELETE {INSTANCES}"))));
}

/// Issue 22: two drained hosts never move two members of one spread group at once.
#[tokio::test]
async fn drains_never_move_two_members_of_a_spread_group_at_once() {
    let mut world = placed_world([("api-a", "small-1"), ("api-b", "small-2"), ("api-c", "small-3")]);
    let mut fourth = world.hosts[2].clone();
    fourth.metadata.name = Some("small-4".into());
    fourth.spec.node_name = "worker-4".into();
    fourth.status = None;
    world.hosts.push(fourth);
    let mut fifth = world.hosts[3].clone();
    fifth.metadata.name = Some("small-5".into());
    fifth.spec.node_name = "worker-5".into();
    world.hosts.push(fifth);
    world.hosts[0].spec.maintenance = true;
    world.hosts[1].spec.maintenance = true;
    world.hosts[0].spec.max_parallel_moves = 4;
    world.hosts[1].spec.max_parallel_moves = 4;
    let nodes: Vec<Node> =
        ["worker-1", "worker-2", "worker-3", "worker-4", "worker-5"].map(|n| host_node(n, true, false)).into();
    let (fake, client) = FakeApi::start();
    serve_running(&fake, &world);
    for _ in 0..16 {
        world = round(&fake, &client, &world, &nodes).await;
        let group_moving = world
            .vms
            .iter()
            .filter(|v| {
                v.spec.placement.spread_group.is_some() && v.status.as_ref().is_some_and(|s| s.moving.is_some())
            })
            .count();
        assert!(group_moving <= 1, "two members of spread group api move at once");
    }
    let hosts = hosts_of(&world);
    assert!(hosts.iter().all(|(_, host)| !matches!(host.as_deref(), Some("small-1" | "small-2"))), "{hosts:?}");
    assert_ne!(hosts[0].1, hosts[1].1, "the spread group holds: {hosts:?}");
}

/// Issue 22, item 2: a host whose node is only NotReady keeps its VMs (it may still run them
/// against shared disks); once the node is fenced, they restart elsewhere.
#[tokio::test]
async fn a_fenced_hosts_vms_come_back_elsewhere_and_a_not_ready_one_keeps_them() {
    let mut world = placed_world([("api-a", "small-1"), ("api-b", "small-2"), ("api-c", "small-1")]);
    let (fake, client) = FakeApi::start();
    serve_running(&fake, &world);
    let not_ready: Vec<Node> =
        [host_node("worker-1", false, false), host_node("worker-2", true, false), host_node("worker-3", true, false)]
            .into();
    for _ in 0..3 {
        world = round(&fake, &client, &world, &not_ready).await;
    }
    assert_eq!(hosts_of(&world)[0].1.as_deref(), Some("small-1"), "NotReady alone moves nothing");
    assert!(world.hosts[0].status.as_ref().unwrap().evacuation.is_none());
    let fenced: Vec<Node> =
        [host_node("worker-1", false, true), host_node("worker-2", true, false), host_node("worker-3", true, false)]
            .into();
    for _ in 0..8 {
        world = round(&fake, &client, &world, &fenced).await;
    }
    assert_eq!(
        hosts_of(&world),
        [
            ("api-a".into(), Some("small-3".into())),
            ("api-b".into(), Some("small-2".into())),
            ("api-c".into(), Some("small-2".into()))
        ]
    );
    let evacuation = world.hosts[0].status.as_ref().unwrap().evacuation.clone().unwrap();
    assert_eq!((evacuation.reason.as_str(), evacuation.state.as_str()), ("Fenced", "Complete"));
    // A fenced host's VMs restart, even one that could migrate.
    assert!(fake.requests().iter().all(|r| !r.starts_with(&format!("POST {MIGRATIONS}"))));
}
