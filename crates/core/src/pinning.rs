//! Whether a VM or a replica holds its cores: the `Pinned` verdict, from the report of the node
//! it runs on (a [`CatalystNodeReport`], the kubelet's PodResources as `catalyst-agent` wrote it).
//!
//! A container holds CPUs exclusively only when the kubelet's static CPU manager gave them to
//! it (a Guaranteed pod asking whole CPUs); PodResources reports no CPUs for a container on
//! the shared pool. So a replica or VM is pinned when its container holds exactly the cores
//! it asked for, no other container on the node holds any of them, and, where one is wanted,
//! they lie on one NUMA node.

use crate::cpuset::{CpuListError, CpuSet};
use crate::key::ObjectKey;
use catalyst_api::CatalystNodeReportSpec;
use std::collections::{BTreeSet, HashMap};

/// Why a VM or replica is not known to be pinned, or is known not to be; the condition's
/// reason. The first two make the condition Unknown: what the report says may no longer be so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Its node is not Ready: its kubelet may be gone, and with it what it held.
    NodeNotReady,
    /// Its node's report has not been renewed for [`STALE_AFTER`]: its agent is gone.
    StaleReport,
    /// Its node has no report, or the report does not list its pod (yet).
    NoReport,
    /// Its container holds fewer (or other) CPUs exclusively than it asked for.
    NotExclusive,
    /// Its cores span NUMA nodes where one was wanted.
    CrossNuma,
    /// Another container on the node holds some of the same CPUs.
    SharedCores,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NodeNotReady => "NodeNotReady",
            Reason::StaleReport => "StaleReport",
            Reason::NoReport => "NoReport",
            Reason::NotExclusive => "NotExclusive",
            Reason::CrossNuma => "CrossNUMA",
            Reason::SharedCores => "SharedCores",
        }
    }
}

impl Reason {
    /// Whether the verdict is unknown rather than false.
    pub fn is_unknown(self) -> bool {
        matches!(self, Reason::NodeNotReady | Reason::StaleReport)
    }

    /// Whether recreating the replica's pod mends it: the kubelet gave it the wrong CPUs.
    pub fn is_repairable(self) -> bool {
        matches!(self, Reason::NotExclusive | Reason::CrossNuma | Reason::SharedCores)
    }
}

/// How often the agent renews its report even when nothing changed (its heartbeat).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// How old a report may grow before nothing it says is trusted: three missed heartbeats.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(180);

/// Whether a report of `node` may be trusted now: its node is Ready and its heartbeat recent.
/// The fault otherwise, which makes every verdict from it Unknown.
pub fn freshness(
    node: &str,
    ready: bool,
    heartbeat: Option<k8s_openapi::jiff::Timestamp>,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<(Reason, String)> {
    if !ready {
        return Some((Reason::NodeNotReady, format!("node {node} is not Ready: what its report says may be gone")));
    }
    let age = heartbeat.map(|at| now.duration_since(at));
    match age {
        Some(age) if age.unsigned_abs() <= STALE_AFTER => None,
        Some(age) => Some((
            Reason::StaleReport,
            format!("node {node}'s report was last renewed {}s ago: its catalyst-agent has stopped", age.as_secs()),
        )),
        // A report of an agent older than the heartbeat is taken as it is.
        None => None,
    }
}

/// A node's report, read once: the CPUs each container holds, and the NUMA cell of each CPU.
#[derive(Debug, Default)]
pub struct NodeCpus {
    /// Every CPU the node shows: its NUMA cells', or what the kubelet names when it has none.
    all: CpuSet,
    allocatable: CpuSet,
    pods: HashMap<ObjectKey, Vec<(String, CpuSet)>>,
    cell_of: HashMap<u32, u32>,
    holders: HashMap<u32, u32>,
    /// Each cell's hugepage pools, by page size (`1Gi`).
    pools: HashMap<u32, Vec<catalyst_api::report::CellHugepages>>,
}

impl NodeCpus {
    pub fn read(report: &CatalystNodeReportSpec) -> Result<Self, CpuListError> {
        let mut node = NodeCpus { allocatable: CpuSet::parse(&report.allocatable_cpus)?, ..NodeCpus::default() };
        for cell in &report.numa {
            for cpu in CpuSet::parse(&cell.cpus)?.iter() {
                node.cell_of.insert(cpu, cell.id);
            }
            node.pools.insert(cell.id, cell.hugepages.clone());
        }
        for pod in &report.pods {
            let mut containers = Vec::with_capacity(pod.containers.len());
            for container in &pod.containers {
                let cpus = CpuSet::parse(&container.cpus)?;
                for cpu in cpus.iter() {
                    *node.holders.entry(cpu).or_default() += 1;
                }
                containers.push((container.name.clone(), cpus));
            }
            node.pods.insert(ObjectKey::namespaced(&pod.namespace, &pod.name), containers);
        }
        let shown = node.cell_of.keys().chain(node.holders.keys()).copied().chain(node.allocatable.iter());
        node.all = shown.collect();
        Ok(node)
    }

    /// The name of the pod in `namespace` that `pod` picks, if the report lists one.
    fn find(&self, namespace: &str, pod: &Pod) -> Option<(&str, &[(String, CpuSet)])> {
        match pod {
            Pod::Named(name) => self
                .pods
                .get_key_value(&ObjectKey::namespaced(namespace, name))
                .map(|(pod, containers)| (pod.name(), containers.as_slice())),
            Pod::Launcher { pods, .. } => {
                let mut launchers =
                    pods.iter().filter_map(|pod| self.pods.get_key_value(&ObjectKey::namespaced(namespace, pod)));
                // Two launchers on one node cannot be told apart here: none is chosen.
                match (launchers.next(), launchers.next()) {
                    (Some((pod, containers)), None) => Some((pod.name(), containers.as_slice())),
                    _ => None,
                }
            }
        }
    }

    fn cells(&self, cpus: &CpuSet) -> BTreeSet<u32> {
        cpus.iter().filter_map(|cpu| self.cell_of.get(&cpu).copied()).collect()
    }

    /// The NUMA cell of a CPU, when the report shows cells.
    pub fn cell_of(&self, cpu: u32) -> Option<u32> {
        self.cell_of.get(&cpu).copied()
    }

    /// Cell `cell`'s pool of `size` pages (`1Gi`), when the report shows it.
    pub fn pool(&self, cell: u32, size: &str) -> Option<&catalyst_api::report::CellHugepages> {
        self.pools.get(&cell)?.iter().find(|pool| pool.size == size)
    }
}

/// Which pod on the node holds a VM's or a replica's cores.
#[derive(Clone, Debug)]
pub enum Pod {
    /// A replica: the StatefulSet's pod of that name.
    Named(String),
    /// A VM: the one of its launcher pods on the node. KubeVirt names them
    /// `virt-launcher-<vmi>-` and a random suffix, but the API server cuts a `generateName` base
    /// to 58 characters (`k8s.io/apiserver/pkg/storage/names/generate.go`), so a VM's name is
    /// not read out of its pods' names: the operator knows them by the `kubevirt.io/domain`
    /// annotation KubeVirt puts on each (`pkg/virt-controller/services/template.go`). During a
    /// migration a VM has two, on two nodes.
    Launcher { vm: String, pods: Vec<String> },
}

/// What a VM or replica should hold.
#[derive(Clone, Debug)]
pub struct Expected {
    pub node: String,
    pub namespace: String,
    pub pod: Pod,
    /// The container that holds the cores (`compute` in a launcher pod).
    pub container: String,
    pub cores: u32,
    /// Whether its cores must lie on one NUMA node.
    pub one_numa_node: bool,
}

/// The cores a pod's container was found holding.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub node: String,
    pub pod: String,
    pub cpus: CpuSet,
    pub numa: BTreeSet<u32>,
}

/// A VM's or replica's verdict: what it holds, and why it is not pinned (none when it is).
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub holding: Option<Holding>,
    pub fault: Option<(Reason, String)>,
}

impl Verdict {
    pub fn pinned(&self) -> bool {
        self.fault.is_none()
    }

    /// `Pinned`, or the reason it is not.
    pub fn label(&self) -> &'static str {
        self.fault.as_ref().map_or("Pinned", |(reason, _)| reason.as_str())
    }
}

/// The verdict for `expected`, from its node's report (`None`: the node has none, or it could
/// not be read).
pub fn check(report: Option<&NodeCpus>, expected: &Expected) -> Verdict {
    let unpinned = |holding, reason, message: String| Verdict { holding, fault: Some((reason, message)) };
    let Some(report) = report else {
        return unpinned(None, Reason::NoReport, format!("node {} has no CatalystNodeReport", expected.node));
    };
    let Some((pod, containers)) = report.find(&expected.namespace, &expected.pod) else {
        let what = match &expected.pod {
            Pod::Named(name) => format!("pod {name}"),
            Pod::Launcher { vm, .. } => format!("one launcher pod of VM {vm}"),
        };
        return unpinned(None, Reason::NoReport, format!("the report of node {} lists no {what}", expected.node));
    };
    let cpus =
        containers.iter().find(|(name, _)| *name == expected.container).map(|(_, c)| c.clone()).unwrap_or_default();
    let holding = Holding { node: expected.node.clone(), pod: pod.to_string(), numa: report.cells(&cpus), cpus };
    let shared: CpuSet = holding.cpus.iter().filter(|cpu| report.holders.get(cpu).copied().unwrap_or(0) > 1).collect();
    if !shared.is_empty() {
        let message = format!("{pod} shares CPUs {shared} on node {} with another container", expected.node);
        return unpinned(Some(holding), Reason::SharedCores, message);
    }
    if holding.cpus.len() != expected.cores as usize {
        let message = format!(
            "container {} of {pod} holds {} CPUs exclusively ({}), not the {} it asked for",
            expected.container,
            holding.cpus.len(),
            if holding.cpus.is_empty() { "it runs on the shared pool".to_string() } else { holding.cpus.to_string() },
            expected.cores
        );
        return unpinned(Some(holding), Reason::NotExclusive, message);
    }
    if expected.one_numa_node && holding.numa.len() > 1 {
        let cells: Vec<String> = holding.numa.iter().map(ToString::to_string).collect();
        let message = format!("{pod} holds CPUs {} across NUMA nodes {}", holding.cpus, cells.join(", "));
        return unpinned(Some(holding), Reason::CrossNuma, message);
    }
    Verdict { holding: Some(holding), fault: None }
}

/// A host's cores as its kubelet reports them: those it keeps back from exclusive use, those
/// each VM's launcher holds, those other pods hold, and those free.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CoreMap {
    pub reserved: CpuSet,
    /// (the VM, its launcher's CPUs), for the VMs found.
    pub vms: Vec<(ObjectKey, CpuSet)>,
    /// (a pod that is no VM's launcher, the CPUs its containers hold).
    pub others: Vec<(ObjectKey, CpuSet)>,
    pub free: CpuSet,
}

/// The core map of a host whose report is `report` and whose ledger holds `vms`: each VM's
/// key and its launcher pods. Free is what the kubelet may give exclusively and
/// no container holds.
pub fn core_map<'a>(report: &NodeCpus, vms: impl IntoIterator<Item = (&'a ObjectKey, Vec<String>)>) -> CoreMap {
    let mut launchers = BTreeSet::new();
    let vms = vms
        .into_iter()
        .filter_map(|(key, pods)| {
            let namespace = key.namespace()?;
            let (pod, containers) = report.find(namespace, &Pod::Launcher { vm: key.name().to_string(), pods })?;
            launchers.insert(ObjectKey::namespaced(namespace, pod));
            let cpus: CpuSet = containers.iter().flat_map(|(_, cpus)| cpus.iter()).collect();
            Some((key.clone(), cpus))
        })
        .collect();
    let mut others: Vec<(ObjectKey, CpuSet)> = report
        .pods
        .iter()
        .filter(|(pod, _)| !launchers.contains(*pod))
        .map(|(pod, containers)| (pod.clone(), containers.iter().flat_map(|(_, cpus)| cpus.iter()).collect::<CpuSet>()))
        .filter(|(_, cpus)| !cpus.is_empty())
        .collect();
    others.sort_by(|a, b| a.0.cmp(&b.0));
    CoreMap {
        reserved: report.all.iter().filter(|cpu| !report.allocatable.contains(*cpu)).collect(),
        vms,
        others,
        free: report.allocatable.iter().filter(|cpu| !report.holders.contains_key(cpu)).collect(),
    }
}

/// The replica to recreate, if one is found holding the wrong cores and every replica is
/// reported (so none is being recreated already): the first such, by its pod's name.
pub fn to_recreate(verdicts: &[Verdict]) -> Option<&Holding> {
    let settled = verdicts.iter().all(|v| v.fault.as_ref().is_none_or(|(reason, _)| reason.is_repairable()));
    let faulty = verdicts.iter().filter(|v| v.fault.as_ref().is_some_and(|(reason, _)| reason.is_repairable()));
    settled.then(|| faulty.filter_map(|v| v.holding.as_ref()).min_by(|a, b| a.pod.cmp(&b.pod)))?
}

/// The gravest fault among several verdicts (a group's replicas), if any.
pub fn worst<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Option<(Reason, String)> {
    verdicts.into_iter().filter_map(|v| v.fault.clone()).max_by_key(|(reason, _)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_api::report::{ContainerCpus, NumaCell, PodCpus};

    /// Issue 20, item 12: a verdict from a node that is not Ready, or from a report no longer
    /// renewed, is Unknown.
    #[test]
    fn a_report_is_trusted_only_from_a_ready_node_while_its_agent_renews_it() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
        let ago = |seconds| Some(now - k8s_openapi::jiff::SignedDuration::from_secs(seconds));
        assert_eq!(freshness("n", true, ago(60), now), None);
        assert_eq!(freshness("n", true, None, now), None, "an agent without a heartbeat");
        let (reason, message) = freshness("n", true, ago(181), now).unwrap();
        assert_eq!(
            (reason, message.as_str()),
            (Reason::StaleReport, "node n's report was last renewed 181s ago: its catalyst-agent has stopped")
        );
        assert_eq!(freshness("n", false, ago(1), now).unwrap().0, Reason::NodeNotReady);
        assert!(Reason::StaleReport.is_unknown() && !Reason::NoReport.is_unknown());
    }

    /// Issue 20, item 11: one replica at a time, and only once every replica is back in the
    /// report.
    #[test]
    fn one_replica_holding_the_wrong_cores_is_recreated_at_a_time() {
        let node = report(&[("sms-1", "sms", "17-24"), ("sms-2", "sms", ""), ("sms-3", "sms", "")]);
        let verdicts: Vec<Verdict> = ["sms-3", "sms-1", "sms-2"].map(|r| check(Some(&node), &replica(r, 8))).into();
        assert_eq!(to_recreate(&verdicts).unwrap().pod, "sms-2", "the first by name");
        let missing: Vec<Verdict> = ["sms-1", "sms-2", "sms-9"].map(|r| check(Some(&node), &replica(r, 8))).into();
        assert_eq!(to_recreate(&missing), None, "sms-9 is not back yet");
        let pinned = [check(Some(&node), &replica("sms-1", 8))];
        assert_eq!(to_recreate(&pinned), None);
    }

    fn report(pods: &[(&str, &str, &str)]) -> NodeCpus {
        NodeCpus::read(&CatalystNodeReportSpec {
            heartbeat_time: None,
            allocatable_cpus: "2-63".into(),
            numa: vec![
                NumaCell { id: 0, cpus: "0-31".into(), ..NumaCell::default() },
                NumaCell { id: 1, cpus: "32-63".into(), ..NumaCell::default() },
            ],
            pods: pods
                .iter()
                .map(|(name, container, cpus)| PodCpus {
                    namespace: "billing".into(),
                    name: name.to_string(),
                    containers: vec![ContainerCpus { name: container.to_string(), cpus: cpus.to_string() }],
                })
                .collect(),
        })
        .unwrap()
    }

    fn replica(name: &str, cores: u32) -> Expected {
        Expected {
            node: "vm-a.billing".into(),
            namespace: "billing".into(),
            pod: Pod::Named(name.into()),
            container: "sms".into(),
            cores,
            one_numa_node: true,
        }
    }

    fn reason(verdict: &Verdict) -> Option<Reason> {
        verdict.fault.as_ref().map(|(reason, _)| *reason)
    }

    #[test]
    fn pinned_when_the_container_holds_exactly_its_cores_alone() {
        let node = report(&[("sms-1", "sms", "17-24"), ("sms-2", "sms", "25-31")]);
        let verdict = check(Some(&node), &replica("sms-1", 8));
        assert!(verdict.pinned(), "{verdict:?}");
        let holding = verdict.holding.unwrap();
        assert_eq!((holding.cpus.to_string(), holding.numa), ("17-24".to_string(), BTreeSet::from([0])));
    }

    #[test]
    fn each_fault_has_its_reason() {
        let node = report(&[
            ("sms-1", "sms", "17-24"),
            ("sms-2", "sms", "24-25"),
            ("sms-3", "sms", ""),
            ("sms-4", "sms", "30-33"),
        ]);
        assert_eq!(reason(&check(None, &replica("sms-1", 8))), Some(Reason::NoReport));
        assert_eq!(reason(&check(Some(&node), &replica("sms-9", 8))), Some(Reason::NoReport));
        let shared = check(Some(&node), &replica("sms-1", 8));
        assert_eq!(reason(&shared), Some(Reason::SharedCores));
        assert!(shared.fault.unwrap().1.contains("shares CPUs 24 on node vm-a.billing"));
        let shared_pool = check(Some(&node), &replica("sms-3", 2));
        assert_eq!(reason(&shared_pool), Some(Reason::NotExclusive));
        assert!(
            shared_pool.fault.unwrap().1.contains("holds 0 CPUs exclusively (it runs on the shared pool), not the 2")
        );
        assert_eq!(reason(&check(Some(&node), &replica("sms-4", 4))), Some(Reason::CrossNuma));
        let anywhere = Expected { one_numa_node: false, ..replica("sms-4", 4) };
        assert!(check(Some(&node), &anywhere).pinned());
        let verdicts = [check(Some(&node), &replica("sms-1", 8)), check(Some(&node), &replica("sms-3", 2))];
        assert_eq!(worst(&verdicts).map(|(r, _)| r), Some(Reason::SharedCores));
    }

    #[test]
    fn a_hosts_core_map_names_reserved_held_and_free_cores() {
        let node = report(&[
            ("virt-launcher-db-x7k2p", "compute", "2-10"),
            ("virt-launcher-web-abcde", "compute", "11-12"),
            ("dpdk-forwarder-0", "forwarder", "13-14"),
            ("shared-pool-pod", "app", ""),
        ]);
        let launchers = |pod: &str| vec![pod.to_string()];
        let [db, web, gone] = ["db", "web", "gone"].map(|vm| ObjectKey::namespaced("billing", vm));
        let map = core_map(
            &node,
            [(&db, launchers("virt-launcher-db-x7k2p")), (&web, launchers("virt-launcher-web-abcde")), (&gone, vec![])],
        );
        let vms: Vec<(String, String)> = map.vms.iter().map(|(vm, cpus)| (vm.to_string(), cpus.to_string())).collect();
        assert_eq!(vms, [("billing/db".into(), "2-10".into()), ("billing/web".into(), "11-12".into())]);
        // Issue 20, item 10: CPUs other pods hold exclusively are named, not lost.
        let others: Vec<(String, String)> =
            map.others.iter().map(|(pod, cpus)| (pod.to_string(), cpus.to_string())).collect();
        assert_eq!(others, [("billing/dpdk-forwarder-0".into(), "13-14".into())]);
        assert_eq!((map.reserved.to_string(), map.free.to_string()), ("0-1".to_string(), "15-63".to_string()));
    }

    /// Issue 20, item 7: a VM is found by the launcher pods KubeVirt made for it, whatever
    /// their names; a VM of 44 characters or more has a pod name the API server cut short.
    #[test]
    fn a_vm_is_found_by_its_launcher_pods_whatever_their_names() {
        let long = "settlement-engine-primary-billing-eu-west-01";
        // `virt-launcher-<long>-` cut to 58 characters, then 5 random ones.
        let cut = format!("{}x7k2p", &format!("virt-launcher-{long}-")[..58]);
        let node = report(&[(&cut, "compute", "2-9"), ("virt-launcher-db-2-abcde", "compute", "10-11")]);
        let vm = |name: &str, pods: &[&str], cores| Expected {
            node: "worker-1".into(),
            namespace: "billing".into(),
            pod: Pod::Launcher { vm: name.into(), pods: pods.iter().map(|p| p.to_string()).collect() },
            container: "compute".into(),
            cores,
            one_numa_node: false,
        };
        let found = check(Some(&node), &vm(long, &[&cut], 8));
        assert!(found.pinned(), "{found:?}");
        assert_eq!(found.holding.unwrap().pod, cut);
        // Its migration target, on another node, is not in this node's report.
        assert!(check(Some(&node), &vm("db-2", &["virt-launcher-db-2-abcde", "virt-launcher-db-2-zzzzz"], 2)).pinned());
        assert_eq!(reason(&check(Some(&node), &vm("db", &[], 2))), Some(Reason::NoReport));
    }
}
