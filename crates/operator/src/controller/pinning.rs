//! The `Pinned` condition of VMs and ServiceGroups, from the CatalystNodeReports the agents
//! write (see [`catalyst_core::pinning`] for the verdicts): what each holds, and whether that
//! is exactly its cores, alone.

use super::conditions::{Wanted, wanted};
use super::{Context, key_of};
use catalyst_api::group::ReplicaCores;
use catalyst_api::host::{HostCores, PodCores, VmCores};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::pinning::{self, Expected, NodeCpus, Pod, Verdict};
use catalyst_core::validation::node_name;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

pub const PINNED: &str = "Pinned";

/// KubeVirt's launcher container that holds a VM's vCPUs (`pkg/virt-controller/services/template.go`).
const COMPUTE: &str = "compute";

/// The node's report, read; `None` when it has none or it cannot be read.
fn node_cpus(ctx: &Context, node: &str) -> Option<NodeCpus> {
    let report = ctx.stores.reports.get(&ObjectRef::new(node))?;
    NodeCpus::read(&report.spec).inspect_err(|error| tracing::warn!(%node, %error, "an unreadable report")).ok()
}

/// The condition for these verdicts (one per replica, or the VM's one).
fn condition(verdicts: &[Verdict], what: &str) -> Wanted {
    match pinning::worst(verdicts) {
        None => wanted(PINNED, true, "Pinned", format!("{what} hold exactly their cores, exclusively")),
        Some((reason, message)) => wanted(PINNED, false, reason.as_str(), message),
    }
}

/// Each replica's cores, and the group's `Pinned` condition. Replicas are the StatefulSet's
/// pods `<group>-1` to `<group>-<replicas>`, on the VM's node, container `<group>`.
pub fn group(group: &ServiceGroup, vm: &CatalystVM, ctx: &Context) -> (Vec<ReplicaCores>, Wanted) {
    let node = node_name(vm);
    let report = node_cpus(ctx, &node);
    let (namespace, name) = (group.namespace().unwrap_or_default(), group.name_any());
    let verdicts: Vec<Verdict> = (1..=group.spec.replicas)
        .map(|ordinal| Expected {
            node: node.clone(),
            namespace: namespace.clone(),
            pod: Pod::Named(format!("{name}-{ordinal}")),
            container: name.clone(),
            cores: group.spec.cpu,
            one_numa_node: false,
        })
        .map(|expected| pinning::check(report.as_ref(), &expected))
        .collect();
    ctx.metrics.verdicts("ServiceGroup", &key_of(group), "replica", verdicts.iter().map(Verdict::label));
    let cores = verdicts
        .iter()
        .filter_map(|v| v.holding.as_ref())
        .map(|h| ReplicaCores {
            replica: h.pod.clone(),
            node: h.node.clone(),
            cpus: h.cpus.to_string(),
            numa: h.numa.iter().copied().collect(),
        })
        .collect();
    (cores, condition(&verdicts, "all replicas"))
}

/// The host CPUs the VM's launcher holds, and the VM's `Pinned` condition. The compute
/// container holds the vCPUs and the isolated emulator thread's cores, as the planner counts
/// them ([`catalyst_core::planner::Overhead::pinned_cores`]). Without NUMA passthrough, a VM that fits in one of its
/// host's cells should lie in one.
pub fn vm(vm: &CatalystVM, host: &CatalystHost, ctx: &Context) -> (Verdict, Wanted) {
    let smallest_cell = host.spec.numa.iter().map(|cell| cell.cpu).min();
    let expected = Expected {
        node: host.spec.node_name.clone(),
        namespace: vm.namespace().unwrap_or_default(),
        pod: Pod::Launcher { vm: vm.name_any(), pods: ctx.stores.launchers_of(&key_of(vm)) },
        container: COMPUTE.into(),
        cores: u32::try_from(ctx.overhead.pinned_cores(vm.spec.cpu.into(), vm.spec.isolate_emulator_thread))
            .unwrap_or(u32::MAX),
        one_numa_node: !vm.spec.numa_passthrough && smallest_cell.is_some_and(|cell| vm.spec.cpu <= cell),
    };
    let verdict = pinning::check(node_cpus(ctx, &expected.node).as_ref(), &expected);
    ctx.metrics.verdicts("CatalystVM", &key_of(vm), "vm", [verdict.label()]);
    let pinned = condition(std::slice::from_ref(&verdict), "its vCPUs");
    (verdict, pinned)
}

/// The host's core map, from its node's report (none without one).
pub fn host_cores(
    host: &CatalystHost,
    ledger: &std::collections::BTreeSet<String>,
    ctx: &Context,
) -> Option<HostCores> {
    let report = node_cpus(ctx, &host.spec.node_name)?;
    let map = pinning::core_map(&report, ledger.iter().map(|vm| (vm, ctx.stores.launchers_of(vm))));
    Some(HostCores {
        reserved: map.reserved.to_string(),
        vms: map.vms.into_iter().map(|(vm, cpus)| VmCores { vm, cpus: cpus.to_string() }).collect(),
        others: map.others.into_iter().map(|(pod, cpus)| PodCores { pod, cpus: cpus.to_string() }).collect(),
        free: map.free.to_string(),
    })
}

/// A Warning event when `Pinned` turns False for a reason other than a report not there yet
/// (pods starting), once per change of reason.
pub async fn warn_when_unpinned(
    object: &k8s_openapi::api::core::v1::ObjectReference,
    old: &[Condition],
    pinned: &Wanted,
    ctx: &Context,
) {
    let was = old.iter().find(|c| c.type_ == PINNED).map(|c| (c.status.as_str(), c.reason.as_str()));
    if pinned.status || pinned.reason == pinning::Reason::NoReport.as_str() || was == Some(("False", pinned.reason)) {
        return;
    }
    ctx.event(object, EventType::Warning, pinned.reason, pinned.message.clone()).await;
}
