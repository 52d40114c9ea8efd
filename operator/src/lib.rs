//! Catalyst: dedicated-resource VMs (KubeVirt) and pinned containers, declared as Kubernetes objects.
//!
//! Layout: [`api`] holds the types, [`validation`] the offline checks, [`manifest`] reads
//! multi-document YAML, [`crd`] generates the CRDs. Everything here is pure; I/O lives in the binaries.

pub mod api;
pub mod controller;
pub mod crd;
pub mod generated;
pub mod identity;
pub mod kubevirt;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod planner;
pub mod pool;
pub mod quantity;
pub mod rbac;
pub mod render;
pub mod schema;
pub mod serve;
pub mod validation;
