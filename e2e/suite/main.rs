//! The end-to-end suite: the real operator binary, talking HTTP to an API server, reconciling
//! real manifests, checked the way a user would check them. It runs on the API-server emulator
//! (the default, on every `cargo test`) and unchanged on a real cluster with
//! `CATALYST_E2E_CLUSTER=kubeconfig` (see e2e/kind/run.sh). Every test makes its own namespace,
//! its own pool of hosts (labelled for its operator's `--host-selector`) and its own operator
//! processes, and cleans up after itself while its operator still runs: nothing is left behind.

mod guest;
mod harness;
#[path = "../support/kubelet_csr.rs"]
mod kubelet_csr;
mod kubevirt;

use catalyst_api::kubevirt::VirtualMachine;
use catalyst_api::report::{ContainerCpus, NumaCell, PodCpus};
use catalyst_api::{CatalystHost, CatalystNodeReport, CatalystNodeReportSpec, CatalystVM, ServiceGroup};
use harness::{Cluster, Layout, Operator, apply, eventually};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kubelet_csr::kubelet_csr;
use serde_json::{Value, json};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(60);
/// How soon a child deleted by hand is back: its watch wakes the owner (a resync would take
/// 5 minutes).
const REPAIR: Duration = Duration::from_secs(20);

/// A fresh cluster and namespace, the operator running, and the minimal layout applied.
async fn running_minimal(prefix: &str) -> (Cluster, String, Operator, Layout) {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace(prefix).await;
    let operator = Operator::start(&cluster, &ns);
    let layout = cluster.layout(&ns);
    layout.apply(&cluster.client).await;
    (cluster, ns, operator, layout)
}

fn vms(client: &Client, ns: &str) -> Api<CatalystVM> {
    Api::namespaced(client.clone(), ns)
}

async fn placed_host(client: &Client, ns: &str, name: &str) -> String {
    let api = vms(client, ns);
    eventually(&format!("CatalystVM {name} placed"), CONVERGE, || async { api.get(name).await.ok()?.status?.host })
        .await
}

async fn virtual_machine(client: &Client, ns: &str, name: &str) -> VirtualMachine {
    let api: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
    eventually(&format!("VirtualMachine {name}"), CONVERGE, || async { api.get_opt(name).await.ok()? }).await
}

async fn stateful_set(client: &Client, ns: &str, name: &str) -> StatefulSet {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    eventually(&format!("StatefulSet {name}"), CONVERGE, || async { api.get_opt(name).await.ok()? }).await
}

fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// What `kubectl get` shows: the Table the API server renders from the printer columns.
async fn table(client: &Client, path: &str) -> Value {
    let request =
        http::Request::get(path).header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").body(vec![]).unwrap();
    client.request::<Value>(request).await.unwrap()
}

fn cell(table: &Value, row_name: &str, column: &str) -> Value {
    let index = table["columnDefinitions"].as_array().unwrap().iter().position(|c| c["name"] == column).unwrap();
    let row = table["rows"].as_array().unwrap().iter().find(|r| r["cells"][0] == row_name).unwrap();
    row["cells"][index].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_converges_into_pinned_virtual_machines_and_statefulsets() {
    let (cluster, ns, operator, layout) = running_minimal("converge").await;
    let client = &cluster.client;

    let host_a = placed_host(client, &ns, "api-a").await;
    let host_b = placed_host(client, &ns, "api-b").await;
    assert_ne!(host_a, host_b, "the spread group puts the two VMs on different hosts");

    for (vm, host) in [("api-a", &host_a), ("api-b", &host_b)] {
        let machine = virtual_machine(client, &ns, vm).await;
        let spec = &machine.spec.template.spec;
        let cpu = spec.domain.cpu.as_ref().unwrap();
        assert_eq!(
            (cpu.cores, cpu.dedicated_cpu_placement, cpu.isolate_emulator_thread),
            (Some(8), Some(true), Some(true))
        );
        let node = layout.hosts.iter().find(|h| h.name_any() == *host).unwrap().spec.node_name.clone();
        assert_eq!(spec.node_selector.get("kubernetes.io/hostname"), Some(&node), "on the planned host's node");
        let owner = &machine.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("CatalystVM", vm));
    }

    let vm = vms(client, &ns).get("api-a").await.unwrap();
    let status = vm.status.unwrap();
    assert_eq!(condition(&status.conditions, "Scheduled"), Some(("True".into(), "Placed".into())));
    assert_eq!(status.virtual_machine_name.as_deref(), Some("api-a"));
    assert_eq!(status.observed_generation, vm.metadata.generation);

    let set = stateful_set(client, &ns, "api-a").await;
    let spec = set.spec.unwrap();
    assert_eq!((spec.replicas, spec.ordinals.unwrap().start), (Some(3), Some(1)));
    let pod = spec.template.spec.unwrap();
    // Replicas go only to the node the operator verified, never on the kubelet's own label.
    let selector = pod.node_selector.unwrap();
    assert_eq!(selector.get("catalyst.io.node-restriction.kubernetes.io/vm"), Some(&format!("api-a.{ns}")));
    assert_eq!(selector.get("catalyst.io/vm"), None);
    let resources = pod.containers[0].resources.clone().unwrap();
    assert_eq!(resources.requests, resources.limits, "Guaranteed QoS");

    // The printer columns a user reads.
    let vm_table = eventually("the VM's Phase column", CONVERGE, || async {
        let t = table(client, &format!("/apis/catalyst.io/v1alpha1/namespaces/{ns}/catalystvms")).await;
        (cell(&t, "api-a", "Phase") != Value::Null).then_some(t)
    })
    .await;
    let columns: Vec<&str> =
        vm_table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Name", "Host", "CPU", "Memory", "Phase", "Node", "Pinned", "Age"]);
    assert_eq!(cell(&vm_table, "api-a", "Host"), json!(host_a));
    assert_eq!(cell(&vm_table, "api-a", "CPU"), json!(8));
    let host_table = eventually("the host's CPU column", CONVERGE, || async {
        let t = table(client, "/apis/catalyst.io/v1alpha1/catalysthosts").await;
        (cell(&t, &host_a, "CPU") == json!("9.015/30")).then_some(t)
    })
    .await;
    assert_eq!(cell(&host_table, &host_a, "VMs"), json!(1));

    // The event a user sees in `kubectl describe`.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let placed = eventually("a Placed event on api-a", CONVERGE, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Placed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("api-a")
        })
    })
    .await;
    // The replica that wrote it, as the operator was told its name (its pod's, in a cluster).
    assert_eq!(placed.reporting_instance, operator.identity());
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_with_disjoint_host_pools_share_a_cluster_without_touching_each_others_hosts() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    let mut teams = Vec::new();
    for prefix in ["pool-a", "pool-b"] {
        let ns = cluster.namespace(prefix).await;
        let operator = Operator::start(&cluster, &ns);
        let layout = cluster.layout(&ns);
        layout.apply(client).await;
        teams.push((ns, operator, layout));
    }
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    for (ns, _, layout) in &teams {
        let own: Vec<String> = layout.hosts.iter().map(|h| h.name_any()).collect();
        for vm in &layout.vms {
            let host = placed_host(client, ns, &vm.name_any()).await;
            assert!(own.contains(&host), "{ns}/{} placed on {host}, outside its pool {own:?}", vm.name_any());
        }
        for host in &own {
            let ledger = eventually(&format!("{host}'s ledger"), CONVERGE, || async {
                let vms = hosts.get(host).await.ok()?.status?.vms;
                (!vms.is_empty()).then_some(vms)
            })
            .await;
            assert!(ledger.iter().all(|key| key.starts_with(&format!("{ns}/"))), "{host} holds {ledger:?}");
        }
    }
    for (ns, _, layout) in &teams {
        cluster.clean_up(ns, &layout.hosts).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_does_not_fit_is_refused_and_what_runs_is_untouched() {
    let (cluster, ns, _operator, layout) = running_minimal("refuse").await;
    let client = &cluster.client;
    stateful_set(client, &ns, "api-a").await;

    // Grow api-a past what its VM's node offers (7 cores): refused, the running StatefulSet kept.
    let groups: Api<ServiceGroup> = Api::namespaced(client.clone(), &ns);
    let mut grown = layout.groups[0].clone();
    grown.spec.replicas = 4;
    apply(&groups, &grown).await;
    let message = eventually("api-a refused", CONVERGE, || async {
        let group = groups.get("api-a").await.ok()?;
        let status = group.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready" && c.reason == "DoesNotFit")?;
        (status.observed_generation == group.metadata.generation).then(|| ready.message.clone())
    })
    .await;
    // 8 cores less the reserved one and the 500m headroom.
    assert!(message.contains("cpu: requested 8 cores, available 6.5, short by 1.5"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stateful_set(client, &ns, "api-a").await.spec.unwrap().replicas, Some(3), "nothing running was touched");

    // A new group too large for its VM never gets a StatefulSet.
    let mut too_big = layout.groups[1].clone();
    too_big.metadata.name = Some("too-big".into());
    too_big.spec.cpu = 16;
    apply(&groups, &too_big).await;
    eventually("too-big refused", CONVERGE, || async {
        let status = groups.get("too-big").await.ok()?.status?;
        condition(&status.conditions, "Ready").filter(|(s, r)| s == "False" && r == "DoesNotFit")
    })
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert!(sets.get_opt("too-big").await.unwrap().is_none());
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_roll_out_and_children_deleted_by_hand_are_repaired() {
    let (cluster, ns, _operator, layout) = running_minimal("repair").await;
    let client = &cluster.client;
    let first = stateful_set(client, &ns, "api-b").await;

    let groups: Api<ServiceGroup> = Api::namespaced(client.clone(), &ns);
    let mut scaled = layout.groups[1].clone();
    scaled.spec.replicas = 2;
    apply(&groups, &scaled).await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    eventually("api-b scaled to 2", CONVERGE, || async {
        (sets.get("api-b").await.ok()?.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    // The VM's status follows what its groups take: 6.5 cores (7 less the 500m headroom) less 2 x 2.
    eventually("api-b's VM shows 2.5 cores left", CONVERGE, || async {
        (vms(client, &ns).get("api-b").await.ok()?.status?.available?.cpu.0 == "2500m").then_some(())
    })
    .await;

    sets.delete("api-b", &DeleteParams::default()).await.unwrap();
    eventually("api-b recreated", CONVERGE, || async {
        let set = sets.get_opt("api-b").await.ok()??;
        (set.uid() != first.uid()).then_some(())
    })
    .await;
    virtual_machine(client, &ns, "api-a").await;
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
    let before = machines.get("api-a").await.unwrap().uid();
    machines.delete("api-a", &DeleteParams::default()).await.unwrap();
    eventually("VirtualMachine api-a recreated", CONVERGE, || async {
        (machines.get_opt("api-a").await.ok()??.uid() != before).then_some(())
    })
    .await;
    // The Service and the cloud-init Secret are owned and watched too: repaired at once, not
    // at the next resync.
    deleted_by_hand_comes_back(&Api::<Service>::namespaced(client.clone(), &ns), "api-b").await;
    deleted_by_hand_comes_back(&Api::<Secret>::namespaced(client.clone(), &ns), "api-a-cloud-init").await;
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// Deletes a child and waits for the operator to make it again (a new uid) within [`REPAIR`].
async fn deleted_by_hand_comes_back<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let before = eventually(&format!("{name} made"), CONVERGE, || async { api.get_opt(name).await.ok()? }).await.uid();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    eventually(&format!("{name} made again"), REPAIR, || async {
        (api.get_opt(name).await.ok()??.uid() != before).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_placed_vm_cannot_be_pinned_to_another_host() {
    let (cluster, ns, _operator, layout) = running_minimal("pin").await;
    let client = &cluster.client;
    let host = placed_host(client, &ns, "api-a").await;
    let other = layout.hosts.iter().map(|h| h.name_any()).find(|h| *h != host).unwrap();
    let mut moved = layout.vms[0].clone();
    moved.spec.host = Some(other);
    let params = kube::api::PatchParams::apply(harness::MANAGER).force();
    let error =
        vms(client, &ns).patch("api-a", &params, &kube::api::Patch::Apply(&moved)).await.unwrap_err().to_string();
    assert!(error.contains("a placed VM never moves"), "{error}");
    assert_eq!(vms(client, &ns).get("api-a").await.unwrap().spec.host, None, "nothing changed");
    let mut pinned_here = layout.vms[0].clone();
    pinned_here.spec.host = Some(host.clone());
    apply(&vms(client, &ns), &pinned_here).await;
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_vm_removes_its_virtual_machine_and_releases_its_host() {
    let (cluster, ns, _operator, layout) = running_minimal("delete").await;
    let client = &cluster.client;
    let host = placed_host(client, &ns, "api-a").await;
    virtual_machine(client, &ns, "api-a").await;

    vms(client, &ns).delete("api-a", &DeleteParams::default()).await.unwrap();
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
    eventually("VirtualMachine api-a gone", CONVERGE, || async {
        machines.get_opt("api-a").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("CatalystVM api-a gone", CONVERGE, || async {
        vms(client, &ns).get_opt("api-a").await.ok()?.is_none().then_some(())
    })
    .await;
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    eventually("the host released", CONVERGE, || async {
        let status = hosts.get(&host).await.ok()?.status?;
        (status.vms.is_empty() && status.summary?.vm_count == 0).then_some(())
    })
    .await;
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_manifests_are_rejected_with_a_clear_message_and_change_nothing() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("invalid").await;
    let layout = cluster.layout(&ns);
    let api = vms(&cluster.client, &ns);
    let mut bad = layout.vms[0].clone();
    bad.spec.cpu = 0;
    let error = api.create(&PostParams::default(), &bad).await.unwrap_err().to_string();
    assert!(error.contains("spec.cpu") && error.contains("should be greater than or equal to 1"), "{error}");
    assert!(api.get_opt("api-a").await.unwrap().is_none());

    let hosts: Api<CatalystHost> = Api::all(cluster.client.clone());
    let mut host = layout.hosts[0].clone();
    host.spec.reserved.cpu = host.spec.capacity.cpu;
    let error = hosts.create(&PostParams::default(), &host).await.unwrap_err().to_string();
    assert!(error.contains("reserved cpu must be less than capacity cpu"), "{error}");
    assert!(hosts.get_opt(&host.name_any()).await.unwrap().is_none());
    cluster.clean_up(&ns, &[]).await;
}

/// A layout with more VMs than hosts, so a restart lands mid-convergence.
fn crowded(cluster: &Cluster, ns: &str) -> Layout {
    let mut layout = cluster.layout(ns);
    let mut third = layout.hosts[0].clone();
    third.metadata.name = Some(format!("{ns}-small-3"));
    third.spec.node_name = format!("{ns}-worker-3");
    layout.hosts.push(third);
    let template = layout.vms[0].clone();
    layout.vms = (1..=6)
        .map(|i| {
            let mut vm = template.clone();
            vm.metadata.name = Some(format!("vm-{i}"));
            vm.spec.placement = Default::default();
            vm
        })
        .collect();
    layout.groups.clear();
    layout
}

/// Every VM placed once, in exactly one ledger, on a host that is not overcommitted.
async fn assert_consistent(client: &Client, ns: &str, layout: &Layout) {
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
    let ledgers = eventually("every VM in a ledger and no overcommit", CONVERGE, || async {
        let mut ledgers = Vec::new();
        for host in &layout.hosts {
            let status = hosts.get(&host.name_any()).await.ok()?.status?;
            let overcommitted = status.conditions.iter().any(|c| c.type_ == "Overcommitted" && c.status == "True");
            if overcommitted {
                panic!("{} is overcommitted: {:?}", host.name_any(), status.conditions);
            }
            ledgers.extend(status.vms.clone());
        }
        (ledgers.len() == layout.vms.len()).then_some(ledgers)
    })
    .await;
    let mut unique = ledgers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ledgers.len(), "a VM sits in two ledgers: {ledgers:?}");
    for vm in &layout.vms {
        let host = placed_host(client, ns, &vm.name_any()).await;
        let in_ledger =
            hosts.get(&host).await.unwrap().status.unwrap().vms.contains(&format!("{ns}/{}", vm.name_any()));
        assert!(in_ledger, "{} says {host} but is not in its ledger", vm.name_any());
    }
    let machines = eventually("one VirtualMachine per VM", CONVERGE, || async {
        let list = machines.list(&Default::default()).await.ok()?;
        (list.items.len() == layout.vms.len()).then_some(list.items)
    })
    .await;
    assert_eq!(machines.len(), layout.vms.len());
}

/// Many VMs at once on few hosts, more than fit (three 30-core hosts take three 8-core VMs
/// each): the batch places exactly as many as fit, no host is overcommitted, no VM sits in two
/// ledgers, a spread group holds, and the rest are Unschedulable.
#[tokio::test(flavor = "multi_thread")]
async fn many_vms_at_once_on_few_hosts_fill_them_and_never_overcommit() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("many").await;
    let mut layout = crowded(&cluster, &ns);
    let template = layout.vms[0].clone();
    layout.vms = (1..=14)
        .map(|i| {
            let mut vm = template.clone();
            vm.metadata.name = Some(format!("vm-{i:02}"));
            vm.spec.placement.spread_group = (i <= 3).then(|| "trio".to_string());
            vm
        })
        .collect();
    let _operator = Operator::start(&cluster, &ns);
    layout.apply(&cluster.client).await;
    let hosts: Api<CatalystHost> = Api::all(cluster.client.clone());
    let ledgers = eventually("nine VMs in the ledgers, five refused", CONVERGE, || async {
        let mut ledgers: Vec<(String, Vec<String>)> = Vec::new();
        for host in &layout.hosts {
            let status = hosts.get(&host.name_any()).await.ok()?.status?;
            ledgers.push((host.name_any(), status.vms.clone()));
        }
        let unschedulable = vms(&cluster.client, &ns)
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .filter(|vm| {
                vm.status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .any(|c| c.type_ == "Scheduled" && c.reason == "Unschedulable")
            })
            .count();
        (ledgers.iter().map(|(_, vms)| vms.len()).sum::<usize>() == 9 && unschedulable == 5).then_some(ledgers)
    })
    .await;
    let mut all: Vec<&String> = ledgers.iter().flat_map(|(_, vms)| vms).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9, "a VM sits in two ledgers: {ledgers:?}");
    for (host, vms) in &ledgers {
        assert_eq!(vms.len(), 3, "{host} holds {vms:?}");
        let trio = vms.iter().filter(|k| ["01", "02", "03"].iter().any(|i| k.ends_with(&format!("vm-{i}")))).count();
        assert!(trio <= 1, "the spread group is broken on {host}: {vms:?}");
    }
    for host in &layout.hosts {
        let status = hosts.get(&host.name_any()).await.unwrap().status.unwrap();
        assert!(
            !status.conditions.iter().any(|c| c.type_ == "Overcommitted" && c.status == "True"),
            "{} is overcommitted",
            host.name_any()
        );
    }
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_killed_mid_convergence_converges_after_a_restart() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("restart").await;
    let layout = crowded(&cluster, &ns);
    layout.apply(&cluster.client).await;
    // On the emulator, server errors on every VirtualMachine write hold the operator between
    // its placements and its VirtualMachines, so the kill lands there.
    let stalled = cluster.inject_fault("PATCH", "/virtualmachines/", 500, 100_000).await;
    let mut operator = Operator::start(&cluster, &ns);
    let hosts: Api<CatalystHost> = Api::all(cluster.client.clone());
    eventually("a first placement in a ledger", CONVERGE, || async {
        for host in &layout.hosts {
            if !hosts.get(&host.name_any()).await.ok()?.status.unwrap_or_default().vms.is_empty() {
                return Some(());
            }
        }
        None
    })
    .await;
    operator.kill();
    if stalled {
        let machines: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), &ns);
        assert!(machines.list(&Default::default()).await.unwrap().items.is_empty(), "killed before any VirtualMachine");
        cluster.emulator_call("DELETE", "/emulator/faults", Value::Null).await;
    }
    operator.restart();
    assert_consistent(&cluster.client, &ns, &layout).await;
    cluster.clean_up(&ns, &layout.hosts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_recovers_from_conflicts_server_errors_and_expired_watches() {
    let Some(cluster) = Cluster::start_emulated("injecting faults").await else { return };
    let ns = cluster.namespace("faults").await;
    let layout = crowded(&cluster, &ns);
    layout.apply(&cluster.client).await;
    // The operator meets these as it starts: placements that lose their compare-and-swap,
    // server errors on its writes and reads.
    assert!(cluster.inject_fault("PUT", "/catalysthosts/", 409, 6).await);
    cluster.inject_fault("PATCH", "/virtualmachines/", 500, 4).await;
    cluster.inject_fault("PATCH", "/catalystvms/", 500, 3).await;
    cluster.inject_fault("GET", "/secrets/", 500, 2).await;
    let operator = Operator::start(&cluster, &ns);
    assert_consistent(&cluster.client, &ns, &layout).await;
    assert!(operator.log().contains("reconcile failed"), "the faults were met and recovered from: {}", operator.log());

    // Every watch ends and its resourceVersion expires (410 Gone): the operator lists again.
    cluster.emulator_call("POST", "/emulator/compact", Value::Null).await;
    let mut changed = layout.vms[0].clone();
    changed.spec.run_strategy = catalyst_api::vm::RunStrategy::Halted;
    apply(&vms(&cluster.client, &ns), &changed).await;
    let machines: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), &ns);
    eventually("the change reconciled after the watches expired", CONVERGE, || async {
        (machines.get("vm-1").await.ok()?.spec.run_strategy.as_deref() == Some("Halted")).then_some(())
    })
    .await;
    cluster.clean_up(&ns, &layout.hosts).await;
}

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt("catalyst-operator").await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_elect_one_leader_fail_over_and_release_on_shutdown() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("leader").await;
    let client = &cluster.client;
    let mut first = Operator::start(&cluster, &ns);
    let leader = eventually("a leader", CONVERGE, || lease_holder(client, &ns)).await;
    assert_eq!(Some(leader.clone()), first.identity());
    let mut second = Operator::start(&cluster, &ns);
    let layout = cluster.layout(&ns);
    layout.apply(client).await;
    virtual_machine(client, &ns, "api-a").await;
    assert_eq!(lease_holder(client, &ns).await, Some(leader.clone()), "the first replica keeps the lease");

    first.kill();
    let successor = eventually("the standby takes over", CONVERGE, || async {
        lease_holder(client, &ns).await.filter(|holder| *holder != leader)
    })
    .await;
    assert_eq!(Some(successor), second.identity());
    let mut late = layout.vms[1].clone();
    late.metadata.name = Some("api-c".into());
    late.spec.placement = Default::default();
    apply(&vms(client, &ns), &late).await;
    virtual_machine(client, &ns, "api-c").await;

    // The leader releases what the test made before it is stopped.
    cluster.release(&ns, &layout.hosts).await;
    assert_eq!(second.terminate(), Some(0), "a clean shutdown: {}", second.log());
    assert!(!second.running());
    eventually("the lease released", CONVERGE, || async {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let spec = leases.get("catalyst-operator").await.ok()?.spec?;
        spec.holder_identity.is_none_or(|h| h.is_empty()).then_some(())
    })
    .await;
    cluster.delete_namespace(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_converged_world_costs_no_write_and_the_operator_names_itself() {
    let Some(cluster) = Cluster::start_emulated("counting requests").await else { return };
    let ns = cluster.namespace("quiet").await;
    let _operator = Operator::start(&cluster, &ns);
    let layout = cluster.layout(&ns);
    layout.apply(&cluster.client).await;
    stateful_set(&cluster.client, &ns, "api-b").await;
    let writes = |counts: std::collections::BTreeMap<String, u64>| -> u64 {
        counts
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("GET") && !k.starts_with("WATCH") && !k.ends_with(" leases") && !k.ends_with(" events")
            })
            .map(|(_, v)| v)
            .sum()
    };
    // Converged: two quiet seconds in a row.
    let mut before = writes(cluster.request_counts().await.unwrap());
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = writes(cluster.request_counts().await.unwrap());
        if now == before {
            break;
        }
        before = now;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(writes(cluster.request_counts().await.unwrap()), before, "{:?}", cluster.request_counts().await);

    // One watch per kind, shared by the three controllers (each would open its own: 15), and
    // the children watched too, by metadata; Secrets twice: the namespace's, and the join tokens
    // the operator mints in kube-system; KubeVirt's launcher pods, by metadata; the kubelet
    // client certificates it approves.
    let counts = cluster.request_counts().await.unwrap();
    for (plural, watches) in [
        ("catalysthosts", 1),
        ("catalystvms", 1),
        ("servicegroups", 1),
        ("nodes", 1),
        ("virtualmachines", 1),
        ("statefulsets", 1),
        ("services", 1),
        ("secrets", 2),
        ("pods", 1),
        ("certificatesigningrequests", 1),
    ] {
        assert_eq!(counts.get(&format!("WATCH {plural}")), Some(&watches), "WATCH {plural}: {counts:?}");
    }

    // The operator says who it is, as an API server's audit log records it.
    let agents = cluster.emulator_call("GET", "/emulator/user-agents", Value::Null).await.unwrap();
    let operator = format!("catalyst-operator/{}", env!("CARGO_PKG_VERSION"));
    assert!(agents[&operator].as_u64().unwrap_or(0) > 10, "{agents}");
    cluster.clean_up(&ns, &layout.hosts).await;
}

use catalyst_e2e as tools;

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_accepts_what_render_prints() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("render").await;
    let layout = cluster.layout(&ns);
    let manifests = cluster.dir.join("layout.yaml");
    let text: Vec<String> = layout
        .hosts
        .iter()
        .map(|h| catalyst_core::yaml::to_string(h).unwrap())
        .chain(layout.vms.iter().map(|v| catalyst_core::yaml::to_string(v).unwrap()))
        .chain(layout.groups.iter().map(|g| catalyst_core::yaml::to_string(g).unwrap()))
        .collect();
    std::fs::write(&manifests, text.join("---\n")).unwrap();
    // What `kubectl catalyst render` prints: the plan's objects as YAML documents.
    let (loaded, errors) = catalyst_core::manifest::load(std::slice::from_ref(&manifests));
    assert!(errors.is_empty(), "{errors:?}");
    let plan = catalyst_core::planner::plan(&catalyst_core::planner::PlanInput::from_manifests(
        &loaded,
        &Default::default(),
        &Default::default(),
    ));
    let rendered = catalyst_core::render::offline::render_plan(&loaded, &plan);
    assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
    let documents: Vec<String> = rendered.objects.iter().map(|o| catalyst_core::yaml::to_string(o).unwrap()).collect();
    let yaml = cluster.dir.join("rendered.yaml");
    std::fs::write(&yaml, documents.join("---\n")).unwrap();
    let output = std::process::Command::new(tools::tool("kubectl"))
        .args(["apply", "--dry-run=client", "-o", "name", "-f"])
        .arg(&yaml)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let names = String::from_utf8(output.stdout).unwrap();
    for name in
        ["virtualmachine.kubevirt.io/api-a", "secret/api-a-cloud-init", "service/api-a", "statefulset.apps/api-b"]
    {
        assert!(names.lines().any(|l| l == name), "{name} missing in:\n{names}");
    }
    cluster.clean_up(&ns, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_explain_describes_the_catalyst_kinds() {
    let cluster = Cluster::start().await;
    let explain = |field: &str| {
        let output = std::process::Command::new(tools::tool("kubectl"))
            .args(["explain", field])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .unwrap();
        assert!(output.status.success(), "{field}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(explain("cvm.spec.cpu").contains("Dedicated whole cores."));
    assert!(explain("chost.spec.reserved").contains("What is kept for the hypervisor and host OS"));
    assert!(explain("sg.spec.template.storage").contains("mountPath"));
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_installs_the_crds_and_the_api_server_refuses_a_crd_over_its_cel_budget() {
    let cluster = Cluster::start().await;
    let kubectl = |args: &[&str]| {
        std::process::Command::new(tools::tool("kubectl"))
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let output = kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        harness::MANAGER,
        "-f",
        "../../crds/",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // The ServiceGroup CRD as it was before its lists were bounded, when a size was a string
    // with a CEL rule, under a group of its own so that nothing real is touched even if a
    // server accepted it.
    let mut crd = serde_json::to_value(catalyst_core::crd::of_kind("ServiceGroup").unwrap()).unwrap();
    let storage = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/template/properties/storage")
        .unwrap();
    storage.as_object_mut().unwrap().remove("maxItems");
    storage["items"]["properties"]["size"] = json!({"type": "string", "maxLength": 64, "x-kubernetes-validations": [
        {"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))", "message": "must be a positive quantity"}
    ]});
    crd["spec"]["group"] = json!("budget.e2e.catalyst.io");
    crd["metadata"]["name"] = json!("servicegroups.budget.e2e.catalyst.io");
    let file = cluster.dir.join("over-budget.json");
    std::fs::write(&file, serde_json::to_vec(&crd).unwrap()).unwrap();
    let output = kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains(
            "spec.validation.openAPIV3Schema.properties[spec].properties[template].properties[storage].items.properties[size].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of 5.9x"
        ),
        "{error}"
    );
}

/// Two hosts of 13 cores and VMs of 4, 4, 3, 3, 2, 2 cores (5, 5, 4, 4, 3, 3 with their
/// emulator threads, and 15m for each launcher pod's console-log sidecar, so 5 + 5 + 3 does not
/// fit in 13): they fit only as {5, 4, 3} + {5, 4, 3}, which best fit decreasing alone misses. Applied together, before the operator starts, as a GitOps sync delivers them.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_places_a_layout_only_an_exact_search_packs() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("exact").await;
    let mut layout = cluster.layout(&ns);
    for host in &mut layout.hosts {
        host.spec.capacity.cpu = 13;
        host.spec.reserved.cpu = 0;
    }
    let template = layout.vms[0].clone();
    layout.vms = [4, 4, 3, 3, 2, 2]
        .iter()
        .enumerate()
        .map(|(i, &cpu)| {
            let mut vm = template.clone();
            vm.metadata.name = Some(format!("vm-{i}"));
            vm.spec.cpu = cpu;
            vm.spec.placement = Default::default();
            vm
        })
        .collect();
    layout.groups.clear();
    layout.apply(&cluster.client).await;
    let _operator = Operator::start(&cluster, &ns);
    assert_consistent(&cluster.client, &ns, &layout).await;
    let hosts: Api<CatalystHost> = Api::all(cluster.client.clone());
    for host in &layout.hosts {
        let status = hosts.get(&host.name_any()).await.unwrap().status.unwrap();
        let cores = status.allocated.map(|a| a.cpu.0);
        assert_eq!(cores.as_deref(), Some("12045m"), "{} holds {:?}", host.name_any(), status.vms);
    }
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// Issue 21: the operator places a passthrough VM only where its guest memory lands inside the
/// pools of the cells its CPUs take, as `plan` does. On hosts of two 16-CPU cells of 16 1Gi
/// pages, the VM of 24 pages, whose 9 CPUs the host kubelet packs into one cell, is
/// Unschedulable with the cell and the fix; the one of 16 pages gets its VirtualMachine.
#[tokio::test(flavor = "multi_thread")]
async fn a_passthrough_vm_is_placed_only_where_its_cells_hold_its_memory() {
    let cluster = Cluster::start().await;
    let ns = cluster.namespace("cells").await;
    let mut layout = cluster.layout(&ns);
    for host in &mut layout.hosts {
        let cell = json!({"cpu": 16, "memory": "64Gi"});
        host.spec.numa = serde_json::from_value(json!([cell, cell])).unwrap();
        host.spec.hugepages.pages_1gi = 32;
    }
    for (vm, memory) in layout.vms.iter_mut().zip(["24Gi", "16Gi"]) {
        vm.spec.memory = k8s_openapi::apimachinery::pkg::api::resource::Quantity(memory.into());
        vm.spec.hugepages = Some(catalyst_api::vm::HugepageSize::OneGibibyte);
        vm.spec.numa_passthrough = true;
    }
    layout.groups.clear();
    let (refused, fits) = (layout.vms[0].name_any(), layout.vms[1].name_any());
    let _operator = Operator::start(&cluster, &ns);
    layout.apply(&cluster.client).await;
    virtual_machine(&cluster.client, &ns, &fits).await;
    let api = vms(&cluster.client, &ns);
    let message = eventually(&format!("CatalystVM {refused} Unschedulable"), CONVERGE, || async {
        let status = api.get(&refused).await.ok()?.status?;
        let scheduled = status.conditions.iter().find(|c| c.type_ == "Scheduled" && c.reason == "Unschedulable")?;
        Some(scheduled.message.clone())
    })
    .await;
    assert!(message.contains(&format!("even alone, {ns}/{refused} does not start")), "{message}");
    assert!(message.contains("asks 24 1Gi pages of cell 0, which has 16 free"), "{message}");
    assert!(message.contains("drop numaPassthrough"), "{message}");
    let machines: Api<VirtualMachine> = Api::namespaced(cluster.client.clone(), &ns);
    assert!(machines.get_opt(&refused).await.unwrap().is_none());
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// A node's report as its agent would write it: each pod with one container holding `cpus`.
fn node_report(node: &str, ns: &str, pods: &[(&str, &str, &str)]) -> CatalystNodeReport {
    let pods = pods
        .iter()
        .map(|(pod, container, cpus)| PodCpus {
            namespace: ns.into(),
            name: pod.to_string(),
            containers: vec![ContainerCpus { name: container.to_string(), cpus: cpus.to_string() }],
        })
        .collect();
    let numa = vec![
        NumaCell { id: 0, cpus: "0-15".into(), ..NumaCell::default() },
        NumaCell { id: 1, cpus: "16-31".into(), ..NumaCell::default() },
    ];
    CatalystNodeReport::new(
        node,
        CatalystNodeReportSpec { allocatable_cpus: "2-31".into(), numa, pods, heartbeat_time: None },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubelets_reports_decide_whether_each_vm_and_replica_is_pinned() {
    let (cluster, ns, _operator, layout) = running_minimal("pinned").await;
    let client = &cluster.client;
    let host = placed_host(client, &ns, "api-a").await;
    let host_node = layout.hosts.iter().find(|h| h.name_any() == host).unwrap().spec.node_name.clone();
    let vm_node = format!("api-a.{ns}");
    let reports: Api<CatalystNodeReport> = Api::all(client.clone());
    // The host's kubelet: api-a's launcher holds its 8 cores and one for the emulator thread
    // (isolateEmulatorThread, the default); the VM-node's: each replica its 2.
    // The host's node and the VM's node, Ready: a report from a node that is not is not
    // believed. (The suite plays their kubelets.)
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for node in [&host_node, &vm_node] {
        let object = serde_json::from_value(json!({"metadata": {"name": node}})).unwrap();
        nodes.create(&PostParams::default(), &object).await.unwrap();
        harness::write_status(&nodes, node, |n| {
            n.status = serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "True"}]})).unwrap();
        })
        .await;
    }
    // KubeVirt's launcher pod of api-a, as KubeVirt labels and annotates it (the suite plays
    // KubeVirt; on no node that runs, so it never starts).
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let launcher = serde_json::from_value(json!({
        "metadata": {"name": "virt-launcher-api-a-x7k2p", "labels": {"kubevirt.io": "virt-launcher"},
                     "annotations": {"kubevirt.io/domain": "api-a"}},
        "spec": {"nodeName": host_node, "containers": [{"name": "compute", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &launcher).await.unwrap();
    apply(&reports, &node_report(&host_node, &ns, &[("virt-launcher-api-a-x7k2p", "compute", "2-10")])).await;
    let replicas = [("api-a-1", "api-a", "2-3"), ("api-a-2", "api-a", "4-5"), ("api-a-3", "api-a", "6-7")];
    apply(&reports, &node_report(&vm_node, &ns, &replicas)).await;

    let groups: Api<ServiceGroup> = Api::namespaced(client.clone(), &ns);
    let pinned_group = |name: &'static str| {
        let groups = groups.clone();
        async move { groups.get(name).await.ok()?.status }
    };
    let status = eventually("ServiceGroup api-a Pinned", CONVERGE, || async {
        let status = pinned_group("api-a").await?;
        (condition(&status.conditions, "Pinned") == Some(("True".into(), "Pinned".into()))).then_some(status)
    })
    .await;
    let cores: Vec<(&str, &str, &[u32])> =
        status.cores.iter().map(|c| (c.replica.as_str(), c.cpus.as_str(), c.numa.as_slice())).collect();
    assert_eq!(cores, [("api-a-1", "2-3", &[0][..]), ("api-a-2", "4-5", &[0]), ("api-a-3", "6-7", &[0])]);
    let vm = eventually("CatalystVM api-a Pinned", CONVERGE, || async {
        let status = vms(client, &ns).get("api-a").await.ok()?.status?;
        (condition(&status.conditions, "Pinned") == Some(("True".into(), "Pinned".into()))).then_some(status)
    })
    .await;
    assert_eq!((vm.host_cpus.as_deref(), vm.host_numa.as_slice()), (Some("2-10"), &[0][..]));
    // The host's core map: what its kubelet keeps back, what api-a holds, what is free.
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    let cores =
        eventually("the host's core map", CONVERGE, || async { hosts.get(&host).await.ok()?.status?.cores }).await;
    let held: Vec<(&str, &str)> = cores.vms.iter().map(|v| (v.vm.as_str(), v.cpus.as_str())).collect();
    assert_eq!((cores.reserved.as_str(), cores.free.as_str()), ("0-1", "11-31"));
    assert_eq!(held, [(format!("{ns}/api-a").as_str(), "2-10")]);

    // `kubectl catalyst status` reads what real kubectl prints of the cluster.
    let output = std::process::Command::new(tools::tool("kubectl"))
        .args(["get", "catalysthosts,catalystvms,servicegroups", "--all-namespaces", "-o", "json"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let live = catalyst_core::status::Live::from_list(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let tree = catalyst_core::status::tree(&live);
    for line in [
        format!("─ CatalystVM {ns}/api-a 8 cores 32Gi"),
        "host CPUs 2-10, NUMA 0 · Pinned".to_string(),
        "ServiceGroup api-a 3×2 cores 8Gi".to_string(),
        format!("api-a-2: 4-5, NUMA 0 on api-a.{ns}"),
    ] {
        assert!(tree.contains(&line), "{line:?} missing in:\n{tree}");
    }
    // No agent on api-b's node yet.
    let api_b = eventually("ServiceGroup api-b reported", CONVERGE, || pinned_group("api-b")).await;
    assert_eq!(condition(&api_b.conditions, "Pinned"), Some(("False".into(), "NoReport".into())));

    // Two replicas on one core: not pinned, a Warning says which, and the first of them is
    // recreated (issue 20, item 11). Where no StatefulSet controller made its pod, the suite
    // does.
    let replica = match pods.get_opt("api-a-2").await.unwrap() {
        Some(pod) => pod,
        None => {
            let pod = serde_json::from_value(json!({
                "metadata": {"name": "api-a-2", "labels": {"catalyst.io/service-group": "api-a"}},
                "spec": {"nodeName": vm_node, "containers": [{"name": "api-a", "image": "registry.k8s.io/pause:3.10"}]}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap()
        }
    };
    let shared = [("api-a-1", "api-a", "2-3"), ("api-a-2", "api-a", "4-5"), ("api-a-3", "api-a", "5-6")];
    apply(&reports, &node_report(&vm_node, &ns, &shared)).await;
    eventually("ServiceGroup api-a SharedCores", CONVERGE, || async {
        let status = pinned_group("api-a").await?;
        (condition(&status.conditions, "Pinned") == Some(("False".into(), "SharedCores".into()))).then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    eventually("a SharedCores warning", CONVERGE, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SharedCores") && e.type_.as_deref() == Some("Warning"))
            .then_some(())
    })
    .await;
    eventually("api-a-2 recreated through the eviction API", CONVERGE, || async {
        let now = pods.get_opt("api-a-2").await.ok()?;
        now.is_none_or(|pod| pod.uid() != replica.uid()).then_some(())
    })
    .await;

    for node in [&host_node, &vm_node] {
        reports.delete(node, &DeleteParams::default()).await.unwrap();
        nodes.delete(node, &DeleteParams::default()).await.unwrap();
    }
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// On a real cluster, a real kubelet through the installed agent (e2e/kind/run.sh installs the
/// chart, whose DaemonSet runs it on every node): a Guaranteed pod asking one whole CPU, on the
/// worker with the static CPU manager, shows in its node's report holding exactly one CPU.
/// The emulator has no kubelet; there the agent is tested against a fake one
/// (crates/agent/tests/agent.rs).
#[tokio::test(flavor = "multi_thread")]
async fn a_real_kubelet_reports_a_guaranteed_pods_exclusive_cpu_through_the_agent() {
    let cluster = Cluster::start().await;
    if cluster.emulated() {
        eprintln!("skipped: needs a real kubelet and the installed agent");
        return;
    }
    // A control plane without kubelets (the suite's own check against a bare kube-apiserver)
    // has no node to run the pod on.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    let schedulable = kube::api::ListParams::default().labels("kubevirt.io/schedulable=true");
    if nodes.list(&schedulable).await.unwrap().items.is_empty() {
        eprintln!("skipped: no node is labelled kubevirt.io/schedulable=true, so no kubelet would run the pod");
        return;
    }
    let ns = cluster.namespace("kubelet").await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "pinned"},
        "spec": {
            "nodeSelector": {"kubevirt.io/schedulable": "true"},
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "1", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "32Mi"}}}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let node = eventually("the pod running", CONVERGE, || async {
        let pod = pods.get("pinned").await.ok()?;
        (pod.status?.phase.as_deref() == Some("Running")).then_some(pod.spec?.node_name?)
    })
    .await;
    let reports: Api<CatalystNodeReport> = Api::all(cluster.client.clone());
    let cpus = eventually("the pod in its node's report", CONVERGE, || async {
        let report = reports.get_opt(&node).await.ok()??;
        let pod = report.spec.pods.into_iter().find(|p| p.namespace == ns && p.name == "pinned")?;
        pod.containers.into_iter().find(|c| c.name == "pause").map(|c| c.cpus).filter(|c| !c.is_empty())
    })
    .await;
    let cpus = catalyst_core::cpuset::CpuSet::parse(&cpus).unwrap();
    assert_eq!(cpus.len(), 1, "one whole CPU, exclusively: {cpus}");
    cluster.clean_up(&ns, &[]).await;
}

/// Issue 10, item 5, against an API server: a node that registers under a VM's name (its
/// kubelet sets `catalyst.io/vm`) gets the node-restriction label the replicas select on only
/// once its InternalIP is the address KubeVirt reports for the VM's instance on the VM's host.
/// The test plays KubeVirt and the kubelet: it writes the instance and the Node itself, so it
/// runs where the suite installed its VirtualMachineInstance stand-in (no KubeVirt).
#[tokio::test(flavor = "multi_thread")]
async fn a_vms_node_is_labelled_for_its_replicas_once_it_matches_the_vms_instance() {
    let (cluster, ns, _operator, layout) = running_minimal("verify").await;
    let client = &cluster.client;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd = crds.get("virtualmachineinstances.kubevirt.io").await.unwrap();
    if !crd.annotations().contains_key("catalyst.io/stand-in") {
        eprintln!("skipped: KubeVirt runs here; the test would have to fake its instances");
        cluster.clean_up(&ns, &layout.hosts).await;
        return;
    }
    let host = placed_host(client, &ns, "api-a").await;
    let host_node = layout.hosts.iter().find(|h| h.name_any() == host).unwrap().spec.node_name.clone();
    let instances: Api<catalyst_api::kubevirt::VirtualMachineInstance> = Api::namespaced(client.clone(), &ns);
    let instance: catalyst_api::kubevirt::VirtualMachineInstance =
        serde_json::from_value(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                                      "metadata": {"name": "api-a"}, "spec": {}}))
        .unwrap();
    instances.create(&PostParams::default(), &instance).await.unwrap();
    harness::write_status(&instances, "api-a", |instance| {
        instance.status = serde_json::from_value(json!({"phase": "Running", "nodeName": host_node,
            "interfaces": [{"name": "default", "ipAddress": "10.244.9.17", "ipAddresses": ["10.244.9.17"]}]}))
        .unwrap();
    })
    .await;

    // The node registers as a kubelet would, under the VM's own name: its own label, then its
    // addresses in its status.
    let node_name = format!("api-a.{ns}");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let register = |address: &str| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Node>(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name, "labels": {"catalyst.io/vm": node_name}},
            "status": {"addresses": [{"type": "InternalIP", "address": address}]}
        }))
        .unwrap()
    };
    // A node under another name that carries the VM's label, even from the instance's address,
    // is not the VM's (issue 20, item 2: a node named "0" once shadowed the real one for ever).
    let shadow = format!("0-{ns}");
    let mut impostor = register("10.244.9.17");
    impostor.metadata.name = Some(shadow.clone());
    nodes.create(&PostParams::default(), &impostor).await.unwrap();
    harness::write_status(&nodes, &shadow, |node| node.status = impostor.status.clone()).await;
    nodes.create(&PostParams::default(), &register("192.168.9.9")).await.unwrap();
    harness::write_status(&nodes, &node_name, |node| node.status = register("192.168.9.9").status).await;
    let verified = |vm: CatalystVM| {
        vm.status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "NodeVerified"))
            .map(|c| (c.status, c.reason))
    };
    eventually("an impostor's address refused", CONVERGE, || async {
        let vm = vms(client, &ns).get("api-a").await.ok()?;
        (verified(vm)? == ("False".to_string(), "AddressMismatch".to_string())).then_some(())
    })
    .await;
    let labels = nodes.get(&node_name).await.unwrap().metadata.labels.unwrap_or_default();
    assert!(!labels.contains_key("catalyst.io.node-restriction.kubernetes.io/vm"), "{labels:?}");

    // Its address becomes the instance's: the VM's own node.
    harness::write_status(&nodes, &node_name, |node| node.status = register("10.244.9.17").status).await;
    eventually("the node labelled as the VM's", CONVERGE, || async {
        let labels = nodes.get(&node_name).await.ok()?.metadata.labels?;
        (labels.get("catalyst.io.node-restriction.kubernetes.io/vm") == Some(&node_name)).then_some(())
    })
    .await;
    eventually("NodeVerified", CONVERGE, || async {
        let vm = vms(client, &ns).get("api-a").await.ok()?;
        (verified(vm)? == ("True".to_string(), "Verified".to_string())).then_some(())
    })
    .await;
    let shadow_labels = nodes.get(&shadow).await.unwrap().metadata.labels.unwrap_or_default();
    assert!(!shadow_labels.contains_key("catalyst.io.node-restriction.kubernetes.io/vm"), "{shadow_labels:?}");
    for node in [&node_name, &shadow] {
        nodes.delete(node, &DeleteParams::default()).await.unwrap();
    }
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// Whether KubeVirt runs here (its VirtualMachineInstance CRD is not the suite's stand-in).
async fn kubevirt_runs(client: &Client) -> bool {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd = crds.get("virtualmachineinstances.kubevirt.io").await.unwrap();
    !crd.annotations().contains_key("catalyst.io/stand-in")
}

/// Issue 20, item 2, against an API server: a VM's kubelet, holding the token the operator
/// minted for that VM, gets its client certificate approved for the VM's own node, and the same
/// token asking for another VM's node is denied (kube-controller-manager's auto-approval would
/// have signed both). The test plays KubeVirt (the VM runs) and the kubelet (the requests, made
/// with the VM's own bootstrap token), so it runs where KubeVirt does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_vms_token_gets_its_own_nodes_certificate_approved_and_no_other() {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let (cluster, ns, _operator, layout) = running_minimal("approve").await;
    let client = &cluster.client;
    if kubevirt_runs(client).await {
        eprintln!("skipped: KubeVirt runs here; the test would have to fake its VirtualMachines");
        cluster.clean_up(&ns, &layout.hosts).await;
        return;
    }
    virtual_machine(client, &ns, "api-a").await;
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
    harness::write_status(&machines, "api-a", |machine| {
        machine.status = serde_json::from_value(json!({"printableStatus": "Running", "ready": true})).unwrap();
    })
    .await;
    // The VM runs: its own token exists in kube-system, and its cloud-init keeps it.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let token = eventually("api-a's token kept in its cloud-init", CONVERGE, || async {
        let data = secrets.get("api-a-cloud-init").await.ok()?.data?;
        String::from_utf8(data.get("joinToken")?.0.clone()).ok()
    })
    .await;
    let tokens: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let token_secret = format!("bootstrap-token-{}", token.split_once('.').unwrap().0);
    eventually("api-a's token in kube-system", CONVERGE, || async { tokens.get_opt(&token_secret).await.ok()? }).await;

    // On a real server the tokens' group may ask for certificates only through the binding the
    // chart makes (templates/join.yaml); the test makes its own, so it needs no chart.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    let binding = harness::unique("catalyst-e2e-node-bootstrappers");
    if !cluster.emulated() {
        let object = serde_json::from_value(json!({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": catalyst_core::kubelet_csr::NODE_BOOTSTRAP_GROUP}]
        }))
        .unwrap();
        bindings.create(&PostParams::default(), &object).await.unwrap();
    }
    // The VM's kubelet, with the VM's token.
    let mut config = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    for user in &mut config.auth_infos {
        user.auth_info = Some(kube::config::AuthInfo { token: Some(token.clone().into()), ..Default::default() });
    }
    let options = kube::config::KubeConfigOptions::default();
    let kubelet = Client::try_from(kube::Config::from_custom_kubeconfig(config, &options).await.unwrap()).unwrap();
    let requests: Api<CertificateSigningRequest> = Api::all(kubelet);
    let own = harness::unique("node-csr");
    let other = harness::unique("node-csr");
    requests.create(&PostParams::default(), &kubelet_csr(&own, &format!("system:node:api-a.{ns}"))).await.unwrap();
    requests.create(&PostParams::default(), &kubelet_csr(&other, &format!("system:node:api-b.{ns}"))).await.unwrap();
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let decision = |name: String| {
        let csrs = csrs.clone();
        async move {
            let csr = csrs.get(&name).await.ok()?;
            let conditions = csr.status?.conditions?;
            let decided = conditions.into_iter().find(|c| c.type_ == "Approved" || c.type_ == "Denied")?;
            Some((decided.type_, decided.reason.unwrap_or_default()))
        }
    };
    let approved = eventually("api-a's request decided", CONVERGE, || decision(own.clone())).await;
    assert_eq!(approved, ("Approved".to_string(), "CatalystVMNode".to_string()));
    let denied = eventually("the request for api-b decided", CONVERGE, || decision(other.clone())).await;
    assert_eq!(denied, ("Denied".to_string(), "NotThisVMsNode".to_string()));
    for name in [own, other] {
        csrs.delete(&name, &DeleteParams::default()).await.unwrap();
    }
    if !cluster.emulated() {
        bindings.delete(&binding, &DeleteParams::default()).await.unwrap();
    }
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// The minimal layout on three hosts, and `api-c` (no spread group, on a Multus network, so it
/// moves by live migration) beside api-a and api-b (bridged on the pod network: they restart).
fn three_hosts(cluster: &Cluster, ns: &str) -> Layout {
    let mut layout = cluster.layout(ns);
    let mut third = layout.hosts[0].clone();
    third.metadata.name = Some(format!("{ns}-small-3"));
    third.spec.node_name = format!("{ns}-worker-3");
    layout.hosts.push(third);
    let mut api_c = layout.vms[0].clone();
    api_c.metadata.name = Some("api-c".into());
    api_c.spec.placement.spread_group = None;
    api_c.spec.network.multus_network_name = Some("hosts-lan".into());
    layout.vms.push(api_c);
    layout.groups.clear();
    layout
}

/// Each VM's host, once every VM has one.
async fn hosts_of_vms(client: &Client, ns: &str, layout: &Layout) -> std::collections::BTreeMap<String, String> {
    let api = vms(client, ns);
    eventually("every VM placed", CONVERGE, || async {
        let mut hosts = std::collections::BTreeMap::new();
        for vm in &layout.vms {
            let status = api.get(&vm.name_any()).await.ok()?.status?;
            hosts.insert(vm.name_any(), status.host?);
        }
        Some(hosts)
    })
    .await
}

/// Waits until `host`'s evacuation is complete and its ledger empty; its reason.
async fn evacuated(client: &Client, host: &str) -> String {
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    eventually(&format!("{host} evacuated"), Duration::from_secs(120), || async {
        let status = hosts.get(host).await.ok()?.status?;
        let evacuation = status.evacuation?;
        (evacuation.state == "Complete" && status.vms.is_empty()).then_some(evacuation.reason)
    })
    .await
}

/// Issue 22: `kubectl catalyst drain` sets `spec.maintenance`; the operator then moves each VM
/// off the host within the plan: api-c, on a Multus network, by live migration (KubeVirt's
/// part played where it does not run), the pod-network VMs by a restart; the spread group holds.
#[tokio::test(flavor = "multi_thread")]
async fn a_drained_host_is_emptied_by_migrate_and_restart() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    let ns = cluster.namespace("drain").await;
    let layout = three_hosts(&cluster, &ns);
    let player = (!kubevirt_runs(client).await).then(|| kubevirt::Player::start(client, &ns));
    let _operator = Operator::start(&cluster, &ns);
    layout.apply(client).await;
    let before = hosts_of_vms(client, &ns, &layout).await;
    let drained = before["api-c"].clone();
    let hosts: Api<CatalystHost> = Api::all(client.clone());
    let maintenance = json!({"spec": {"maintenance": true}});
    hosts.patch(&drained, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&maintenance)).await.unwrap();
    assert_eq!(evacuated(client, &drained).await, "Drain");
    let after = hosts_of_vms(client, &ns, &layout).await;
    assert!(after.values().all(|host| *host != drained), "{after:?}");
    assert_ne!(after["api-a"], after["api-b"], "the spread group holds: {after:?}");
    if let Some(player) = &player {
        assert_eq!(*player.migrated.lock().unwrap(), ["api-c"], "api-c migrated, the others restarted");
    }
    let api = vms(client, &ns);
    let moved = api.get("api-c").await.unwrap().status.unwrap();
    assert!(moved.conditions.iter().any(|c| c.type_ == "Moving" && c.reason == "Moved"), "{:?}", moved.conditions);
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// Issue 22, item 2: a host whose node is fenced (`node.kubernetes.io/out-of-service`, set by an
/// admin once the server is off) has its VMs started elsewhere (that NotReady alone moves
/// nothing is a reconcile test's).
#[tokio::test(flavor = "multi_thread")]
async fn a_fenced_hosts_vms_restart_elsewhere() {
    let cluster = Cluster::start().await;
    let client = &cluster.client;
    let ns = cluster.namespace("fenced").await;
    let layout = three_hosts(&cluster, &ns);
    let _player = (!kubevirt_runs(client).await).then(|| kubevirt::Player::start(client, &ns));
    let _operator = Operator::start(&cluster, &ns);
    layout.apply(client).await;
    let before = hosts_of_vms(client, &ns, &layout).await;
    let lost = before["api-a"].clone();
    let node_name = layout.hosts.iter().find(|h| h.name_any() == lost).unwrap().spec.node_name.clone();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "metadata": {"name": node_name},
        "spec": {"taints": [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(evacuated(client, &lost).await, "Fenced");
    let after = hosts_of_vms(client, &ns, &layout).await;
    assert!(after.values().all(|host| *host != lost), "{after:?}");
    nodes.delete(&node_name, &DeleteParams::default()).await.unwrap();
    cluster.clean_up(&ns, &layout.hosts).await;
}

/// Issue 23, item 4: `kubectl catalyst plan --live` reads the live layout through the real
/// kubectl and says what merging a pull request's files would do: the VM it adds is placed, the
/// running VM whose cores change restarts.
#[tokio::test(flavor = "multi_thread")]
async fn plan_live_shows_what_a_merge_would_place_and_restart() {
    let (cluster, ns, _operator, layout) = running_minimal("plan-live").await;
    let client = &cluster.client;
    let host = placed_host(client, &ns, "api-a").await;
    placed_host(client, &ns, "api-b").await;
    let mut grown = layout.vms.iter().find(|vm| vm.name_any() == "api-a").unwrap().clone();
    grown.spec.cpu = 10;
    let mut added = grown.clone();
    added.metadata.name = Some("api-c".into());
    added.spec.cpu = 4;
    added.spec.placement.spread_group = None;
    let pull_request = cluster.dir.join("pull-request");
    std::fs::create_dir_all(&pull_request).unwrap();
    let files = [&grown, &added].map(|vm| catalyst_core::yaml::to_string(vm).unwrap()).join("---\n");
    std::fs::write(pull_request.join("vms.yaml"), files).unwrap();
    let output = std::process::Command::new(harness::binary("kubectl-catalyst"))
        .args(["plan", "--live", "-f"])
        .arg(&pull_request)
        .arg("--kubectl")
        .arg(tools::tool("kubectl"))
        .arg(format!("--host-selector={}={ns}", harness::POOL))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    // Other tests' VMs, on hosts outside this pool, may make the plan fail; bad input may not.
    assert_ne!(output.status.code(), Some(2), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains(&format!("- restart {ns}/api-a on {host}: domain.cpu.cores: 8 → 10")), "{text}");
    assert!(text.contains(&format!("- place {ns}/api-c on {ns}-small-")), "{text}");
    assert!(!text.contains(&format!("restart {ns}/api-b")), "{text}");
    cluster.clean_up(&ns, &layout.hosts).await;
}
