//! `catalyst-agent`: on each node (the hosts, and the VMs that are nodes), reads from the
//! kubelet's PodResources API which CPUs each container holds exclusively, and writes it as the
//! node's [`CatalystNodeReport`](catalyst_api::CatalystNodeReport), from which the operator
//! tells whether every VM and replica is pinned.
//!
//! [`kubelet`] talks to the kubelet's socket, [`sysfs`] reads the node's NUMA cells, and
//! [`report`] turns both into the report, a pure function.

pub mod kubelet;
pub mod report;
pub mod sysfs;

/// The kubelet's PodResources API, `v1`, generated from the vendored proto.
#[allow(clippy::all, clippy::pedantic)]
pub mod podresources {
    tonic::include_proto!("v1");
}
