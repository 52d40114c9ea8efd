//! The node's report, from what the kubelet says: a pure function, so the same pods always
//! give the same report and an unchanged node is never written again.

use crate::kubelet::Snapshot;
use catalyst_api::CatalystNodeReportSpec;
use catalyst_api::report::{ContainerCpus, NumaCell, PodCpus};
use catalyst_core::cpuset::{CpuSet, MAX_CPUS};

/// The report of a node whose kubelet answered `snapshot` and whose NUMA cells are `numa`:
/// every pod, sorted, with the CPUs each container holds exclusively (none for the shared pool).
pub fn report(snapshot: &Snapshot, numa: Vec<NumaCell>) -> CatalystNodeReportSpec {
    let mut pods: Vec<PodCpus> = snapshot
        .pods
        .pod_resources
        .iter()
        .map(|pod| {
            let mut containers: Vec<ContainerCpus> = pod
                .containers
                .iter()
                .map(|c| ContainerCpus { name: c.name.clone(), cpus: cpu_list(&c.cpu_ids) })
                .collect();
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            PodCpus { namespace: pod.namespace.clone(), name: pod.name.clone(), containers }
        })
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    CatalystNodeReportSpec {
        allocatable_cpus: cpu_list(&snapshot.allocatable.cpu_ids),
        numa,
        pods,
        heartbeat_time: None,
    }
}

/// The kubelet's CPU ids as a Linux CPU list; ids no CPU can have are left out.
fn cpu_list(ids: &[i64]) -> String {
    ids.iter().filter_map(|&id| u32::try_from(id).ok()).filter(|&id| id < MAX_CPUS).collect::<CpuSet>().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podresources::{
        AllocatableResourcesResponse, ContainerResources, ListPodResourcesResponse, PodResources,
    };

    fn pod(namespace: &str, name: &str, containers: &[(&str, &[i64])]) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: namespace.into(),
            containers: containers
                .iter()
                .map(|(name, cpus)| ContainerResources {
                    name: name.to_string(),
                    cpu_ids: cpus.to_vec(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn every_pod_sorted_with_its_exclusive_cpus() {
        let snapshot = Snapshot {
            pods: ListPodResourcesResponse {
                pod_resources: vec![
                    pod("kube-system", "kube-proxy-x", &[("kube-proxy", &[])]),
                    pod("billing", "sms-2", &[("sms", &[25, 26, 24, 27])]),
                    pod("billing", "sms-1", &[("sms", &[17, 18, 19, 20]), ("istio-proxy", &[-1, 9000])]),
                ],
            },
            allocatable: AllocatableResourcesResponse { cpu_ids: vec![3, 2, 4, 5, 6, 7], ..Default::default() },
        };
        let report = report(&snapshot, Vec::new());
        assert_eq!(report.allocatable_cpus, "2-7");
        let names: Vec<&str> = report.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sms-1", "sms-2", "kube-proxy-x"]);
        assert_eq!(report.pods[0].containers[0], ContainerCpus { name: "istio-proxy".into(), cpus: String::new() });
        assert_eq!(report.pods[0].containers[1].cpus, "17-20");
        assert_eq!(report.pods[1].containers[0].cpus, "24-27");
    }
}
