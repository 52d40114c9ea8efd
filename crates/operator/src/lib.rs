//! Catalyst's operator: the controllers and what runs them (leader election, metrics, probes).
//!
//! The decisions are made in `catalyst-core`; this crate reads the cluster, applies what the
//! core built and reports. [`rbac`] lists every call it makes, and the chart's RBAC is generated
//! from that list.

pub mod controller;
pub mod identity;
pub mod lease;
pub mod metrics;
pub mod per_object;
pub mod rbac;
pub mod serve;
pub mod throttle;
