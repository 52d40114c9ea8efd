//! The `Pinned` condition of VMs and ServiceGroups, from the CatalystNodeReports the agents
//! write (see [`catalyst_core::pinning`] for the verdicts): what each holds, and whether that
//! is exactly its cores, alone. A report is believed only from a Ready node whose agent still
//! renews it; otherwise `Pinned` is Unknown. A replica found on the wrong cores is recreated
//! ([`repair`]) unless its group says only to report it.
//!
//! [`read`] is the dereference step (the caches and the clock); [`group`], [`vm`] and
//! [`host_cores`] are pure: data in, verdicts out, their metrics left to the caller.

use super::conditions::{Status, Wanted, wanted};
use super::{Context, Error, key_of, object_id};
use catalyst_api::group::{Repair, ReplicaCores};
use catalyst_api::host::{HostCores, PodCores, VmCores};
use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::guest_cells;
use catalyst_core::key::ObjectKey;
use catalyst_core::pinning::{self, Expected, NodeCpus, Pod, Reason, Verdict};
use catalyst_core::planner::{HostCells, Overhead, VmModel};
use catalyst_core::validation::node_name;
use k8s_openapi::api::core::v1::Pod as PodObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::EvictParams;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use std::time::{Duration, Instant};

pub const PINNED: &str = "Pinned";
pub const NUMA_PLACED: &str = "NumaPlaced";

/// KubeVirt's launcher container that holds a VM's vCPUs (`pkg/virt-controller/services/template.go`).
const COMPUTE: &str = "compute";

/// A node's report as the verdicts read it.
pub struct Report {
    /// The report, read; `None` when it has none or it cannot be read.
    cpus: Option<NodeCpus>,
    /// Why it is not to be believed now, if it is not.
    untrusted: Option<(Reason, String)>,
    /// When to look at it again: before it stops being believed, for lack of a heartbeat; or,
    /// stale, soon, since a renewed heartbeat alone wakes nothing.
    trusted_for: Option<Duration>,
}

/// How soon a stale report is looked at again.
const STALE_RECHECK: Duration = Duration::from_secs(30);

/// The report of `node` as the caches hold it now, and whether to believe it.
pub fn read(ctx: &Context, node: &str) -> Report {
    let Some(report) = ctx.stores.reports.get(&ObjectRef::new(node)) else {
        return Report { cpus: None, untrusted: None, trusted_for: None };
    };
    let cpus = NodeCpus::read(&report.spec).inspect_err(|error| tracing::warn!(%node, %error, "an unreadable report"));
    let ready = ctx.stores.node(node).is_some_and(|n| super::node_is_ready(&n));
    let heartbeat = report.spec.heartbeat_time.as_ref().map(|t| t.0);
    let now = (ctx.clock)().0;
    let untrusted = pinning::freshness(node, ready, heartbeat, now);
    let trusted_for = match &untrusted {
        Some((Reason::StaleReport, _)) => Some(STALE_RECHECK),
        Some(_) => None,
        None => heartbeat.map(|at| {
            pinning::STALE_AFTER.saturating_sub(now.duration_since(at).unsigned_abs()) + Duration::from_secs(1)
        }),
    };
    Report { cpus: cpus.ok(), untrusted, trusted_for }
}

impl Report {
    fn check(&self, expected: &Expected) -> Verdict {
        let verdict = pinning::check(self.cpus.as_ref(), expected);
        match &self.untrusted {
            Some(fault) => Verdict { holding: verdict.holding, fault: Some(fault.clone()) },
            None => verdict,
        }
    }
}

/// The condition for these verdicts (one per replica, or the VM's one).
fn condition(verdicts: &[Verdict], what: &str) -> Wanted {
    match pinning::worst(verdicts) {
        None => wanted(PINNED, true, "Pinned", format!("{what} hold exactly their cores, exclusively")),
        Some((reason, message)) => {
            let status = if reason.is_unknown() { Status::Unknown } else { Status::False };
            wanted(PINNED, status, reason.as_str(), message)
        }
    }
}

/// A group's verdicts: each replica's cores, the `Pinned` condition, and how long they hold.
pub struct GroupPinning {
    pub cores: Vec<ReplicaCores>,
    pub pinned: Wanted,
    pub verdicts: Vec<Verdict>,
    /// When to look again, as the report stops being believed without a heartbeat.
    pub recheck: Option<Duration>,
}

/// Each replica's cores, and the group's `Pinned` condition. Replicas are the StatefulSet's
/// pods `<group>-1` to `<group>-<replicas>`, on the VM's node, container `<group>`.
/// `report` is that of the VM's node.
pub fn group(group: &ServiceGroup, vm: &CatalystVM, report: &Report) -> GroupPinning {
    let node = node_name(vm);
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
        .map(|expected| report.check(&expected))
        .collect();
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
    let pinned = condition(&verdicts, "all replicas");
    GroupPinning { cores, pinned, verdicts, recheck: report.trusted_for }
}

/// What a VM's host report says of it.
pub struct VmPinning {
    pub verdict: Verdict,
    /// Its `Pinned` condition.
    pub pinned: Wanted,
    /// Its `NumaPlaced` condition, for a NUMA-passthrough VM on a host with cells.
    pub numa: Option<Wanted>,
    /// When to look again, as the report stops being believed without a heartbeat.
    pub trusted_for: Option<Duration>,
}

/// The host CPUs the VM's launcher holds, the VM's `Pinned` and `NumaPlaced` conditions, and
/// how long the verdicts hold. The compute container holds the vCPUs and the isolated emulator
/// thread's cores, as the planner counts them ([`catalyst_core::planner::Overhead::pinned_cores`]).
/// Without NUMA passthrough, a VM that fits in one of its host's cells should lie in one.
/// `report` is that of the host's node, `launchers` the VM's launcher pods the cache knows.
pub fn vm(
    vm: &CatalystVM,
    host: &CatalystHost,
    report: &Report,
    launchers: Vec<String>,
    overhead: &Overhead,
) -> VmPinning {
    let smallest_cell = host.spec.numa.iter().map(|cell| cell.cpu).min();
    let expected = Expected {
        node: host.spec.node_name.clone(),
        namespace: vm.namespace().unwrap_or_default(),
        pod: Pod::Launcher { vm: vm.name_any(), pods: launchers },
        container: COMPUTE.into(),
        cores: u32::try_from(overhead.pinned_cores(vm.spec.cpu.into(), vm.spec.isolate_emulator_thread))
            .unwrap_or(u32::MAX),
        one_numa_node: !vm.spec.numa_passthrough && smallest_cell.is_some_and(|cell| vm.spec.cpu <= cell),
    };
    let verdict = report.check(&expected);
    let pinned = condition(std::slice::from_ref(&verdict), "its vCPUs");
    let numa = numa_placed(vm, host, report, &verdict, overhead);
    VmPinning { verdict, pinned, numa, trusted_for: report.trusted_for }
}

/// Issue 21: a passthrough VM's real cells and pools against the plan's premises
/// ([`guest_cells::check`]); none for a VM whose memory is not bound to cells.
fn numa_placed(
    vm: &CatalystVM,
    host: &CatalystHost,
    report: &Report,
    verdict: &Verdict,
    overhead: &Overhead,
) -> Option<Wanted> {
    if !vm.spec.numa_passthrough || vm.spec.hugepages.is_none() || host.spec.numa.is_empty() {
        return None;
    }
    if let Some((reason, message)) = &report.untrusted {
        return Some(wanted(NUMA_PLACED, Status::Unknown, reason.as_str(), message.clone()));
    }
    let (Some(cpus), Some(holding)) = (report.cpus.as_ref(), verdict.holding.as_ref()) else {
        let message = "its launcher is not in its host's report yet";
        return Some(wanted(NUMA_PLACED, Status::Unknown, Reason::NoReport.as_str(), message));
    };
    let model = VmModel::from_vm(vm, overhead);
    let found = guest_cells::check(cpus, &holding.cpus, &model, &HostCells::from_spec(&host.spec));
    let status = match found.reason {
        guest_cells::Reason::WithinPools => Status::True,
        guest_cells::Reason::NoPools => Status::Unknown,
        _ => Status::False,
    };
    Some(wanted(NUMA_PLACED, status, found.reason.as_str(), found.message))
}

/// The host's core map, from its node's report (none without one): `vms` are the VMs of its
/// ledger with the launcher pods the cache knows of each.
pub fn host_cores<'a>(
    report: &Report,
    vms: impl IntoIterator<Item = (&'a ObjectKey, Vec<String>)>,
) -> Option<HostCores> {
    let map = pinning::core_map(report.cpus.as_ref()?, vms);
    Some(HostCores {
        reserved: map.reserved.to_string(),
        vms: map.vms.iter().map(|(vm, cpus)| VmCores { vm: vm.to_string(), cpus: cpus.to_string() }).collect(),
        others: map
            .others
            .iter()
            .map(|(pod, cpus)| PodCores { pod: pod.to_string(), cpus: cpus.to_string() })
            .collect(),
        free: map.free.to_string(),
    })
}

/// A Warning event when a condition (`Pinned`, `NumaPlaced`) turns False for a reason other
/// than a report not there yet (pods starting), once per change of reason.
pub async fn warn_when_false(
    object: &k8s_openapi::api::core::v1::ObjectReference,
    old: &[Condition],
    condition: &Wanted,
    ctx: &Context,
) {
    let was = old.iter().find(|c| c.type_ == condition.type_).map(|c| (c.status.as_str(), c.reason.as_str()));
    if condition.status != Status::False
        || condition.reason == Reason::NoReport.as_str()
        || was == Some(("False", condition.reason))
    {
        return;
    }
    ctx.event(object, EventType::Warning, condition.reason, condition.message.clone()).await;
}

/// The first pause after recreating a replica of a group, doubled after each one while the
/// group stays unpinned, up to [`REPAIR_PAUSE_MAX`]: a kubelet that keeps misplacing replicas
/// is not given a pod to misplace every few seconds.
pub const REPAIR_PAUSE: Duration = Duration::from_secs(30);
pub const REPAIR_PAUSE_MAX: Duration = Duration::from_secs(600);

/// Issue 20, item 11: a replica the kubelet gave the wrong cores is recreated, one at a time
/// (only once every replica is back in the report), with a growing pause between, through the
/// eviction API so the group's disruption budgets hold; each attempt is an event. A group that
/// is pinned again forgets its pauses. Returns when to look again for the next one.
pub async fn repair(group: &ServiceGroup, pinning: &GroupPinning, ctx: &Context) -> Result<Option<Duration>, Error> {
    let id = object_id("ServiceGroup", &key_of(group));
    if pinning.pinned.status == Status::True {
        ctx.repairs.lock().remove(&id);
        return Ok(None);
    }
    if group.spec.pinning.repair != Repair::Recreate {
        return Ok(None);
    }
    let Some(replica) = pinning::to_recreate(&pinning.verdicts) else { return Ok(None) };
    let previous = ctx.repairs.lock().get(&id).copied();
    if let Some((at, pause)) = previous
        && at.elapsed() < pause
    {
        return Ok(Some(pause - at.elapsed()));
    }
    let pods: Api<PodObject> = Api::namespaced(ctx.client.clone(), &group.namespace().unwrap_or_default());
    let next = previous.map_or(REPAIR_PAUSE, |(_, pause)| (pause * 2).min(REPAIR_PAUSE_MAX));
    ctx.repairs.lock().insert(id, (Instant::now(), next));
    let fault = &pinning.pinned.message;
    let object = group.object_ref(&());
    match pods.evict(&replica.pod, &EvictParams::default()).await {
        Ok(_) => {
            let note = format!(
                "recreating {} so that its kubelet pins it again ({fault}); next in {}s at the earliest",
                replica.pod,
                next.as_secs()
            );
            ctx.event(&object, EventType::Normal, "RecreatingUnpinnedReplica", note).await;
        }
        // A disruption budget allows no eviction now: try again after the pause.
        Err(kube::Error::Api(status)) if status.code == 429 => {
            let note = format!("{} stays on the wrong cores for now: {}", replica.pod, status.message);
            ctx.event(&object, EventType::Warning, "RecreateBlocked", note).await;
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => return Err(Error::EvictReplica { pod: replica.pod.clone(), source }),
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_api::report::{CatalystNodeReportSpec, ContainerCpus, NumaCell, PodCpus};

    fn group_and_vm() -> (ServiceGroup, CatalystVM) {
        let group = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sms", "namespace": "billing"},
            "spec": {"vm": "vm-a", "replicas": 2, "cpu": 2, "memory": "4Gi", "template": {"image": "sms:1"}}
        }))
        .unwrap();
        let vm = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "vm-a", "namespace": "billing"},
            "spec": {"cpu": 8, "memory": "32Gi", "bootDisk": {"containerDisk": {"image": "img"}}}
        }))
        .unwrap();
        (group, vm)
    }

    /// The node's report: each replica `sms-N` holds the CPUs given, alone.
    fn report(replicas: &[&str], untrusted: Option<(Reason, String)>) -> Report {
        let spec = CatalystNodeReportSpec {
            heartbeat_time: None,
            allocatable_cpus: "1-7".into(),
            numa: vec![NumaCell { id: 0, cpus: "0-7".into(), ..NumaCell::default() }],
            pods: replicas
                .iter()
                .enumerate()
                .map(|(i, cpus)| PodCpus {
                    namespace: "billing".into(),
                    name: format!("sms-{}", i + 1),
                    containers: vec![ContainerCpus { name: "sms".into(), cpus: cpus.to_string() }],
                })
                .collect(),
        };
        Report { cpus: NodeCpus::read(&spec).ok(), untrusted, trusted_for: None }
    }

    #[test]
    fn a_groups_verdicts_come_from_the_report_it_is_given() {
        let (sms, vm) = group_and_vm();
        let pinned = super::group(&sms, &vm, &report(&["1-2", "3-4"], None));
        assert_eq!(pinned.pinned.status, Status::True, "{:?}", pinned.pinned);
        assert_eq!(pinned.cores.iter().map(|c| c.cpus.as_str()).collect::<Vec<_>>(), ["1-2", "3-4"]);

        let missing = super::group(&sms, &vm, &report(&["1-2"], None));
        assert_eq!(missing.pinned.status, Status::False, "a replica the believed report lacks: {:?}", missing.pinned);
    }

    #[test]
    fn a_report_not_to_be_believed_makes_every_verdict_unknown() {
        let (sms, vm) = group_and_vm();
        let stale = report(&["1-2", "3-4"], Some((Reason::StaleReport, "its agent stopped renewing it".into())));
        let pinned = super::group(&sms, &vm, &stale);
        assert_eq!((pinned.pinned.status, pinned.pinned.reason), (Status::Unknown, Reason::StaleReport.as_str()));
    }

    #[test]
    fn a_host_without_a_report_has_no_core_map() {
        let key = ObjectKey::namespaced("billing", "vm-a");
        let none = Report { cpus: None, untrusted: None, trusted_for: None };
        assert!(host_cores(&none, [(&key, vec!["virt-launcher-vm-a-x".to_string()])]).is_none());
        assert!(host_cores(&report(&[], None), [(&key, Vec::new())]).is_some());
    }
}
