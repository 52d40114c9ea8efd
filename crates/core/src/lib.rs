//! Catalyst's pure core: what a layout means, decided without a client or an async runtime.
//!
//! [`validation`] checks objects offline, [`manifest`] reads multi-document YAML within
//! [`manifest::bounds`], [`planner`] places VMs on hosts and groups in VMs, [`render`] builds
//! the objects the operator applies, [`node_identity`] decides whether a Node is the VM it
//! claims to be, [`crd`] and [`schema`] generate and check the CRDs, and
//! [`pool`] selects the hosts one operator owns. The crate has no kube client and no tokio:
//! the compiler, not a comment, keeps I/O out; the only I/O is [`manifest::load`] reading files.

pub mod cpuset;
pub mod crd;
pub mod guest_cells;
pub mod key;
pub mod kubelet_csr;
pub mod manifest;
pub mod merge;
pub mod moving;
pub mod node_identity;
pub mod pinning;
pub mod planner;
pub mod pool;
pub mod quantity;
pub mod release;
pub mod render;
pub mod schema;
pub mod status;
pub mod validation;
pub mod yaml;
