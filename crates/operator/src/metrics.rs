//! Prometheus metrics of the operator, served on `/metrics` in the OpenMetrics text format.

use catalyst_core::key::ObjectKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// A failed reconcile: the kind, and what failed (`controller::Error::label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// What was found pinned: `vm` or `replica`, and the verdict (`Pinned`, or why not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PinnedLabels {
    pub subject: &'static str,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub placement_failures: Counter,
    pub host_cpu_allocated: Family<HostLabel, Gauge<f64, AtomicU64>>,
    pub host_cpu_free: Family<HostLabel, Gauge<f64, AtomicU64>>,
    pub host_memory_allocated: Family<HostLabel, Gauge<f64, AtomicU64>>,
    pub host_memory_free: Family<HostLabel, Gauge<f64, AtomicU64>>,
    /// Hosts that have gauges, so a deleted host's can be removed.
    hosts: std::sync::Mutex<std::collections::BTreeSet<String>>,
    pub pinned: Family<PinnedLabels, Gauge>,
    /// The verdicts last counted for each object (a VM's one, a group's per replica), so a new
    /// verdict replaces them and a deleted object's leave the gauges.
    verdicts: crate::per_object::PerObject<Vec<PinnedLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("catalyst");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome (ok; wait: a deletion under way or a write that lost a race; error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind and what failed (waits are not failures: see reconciles_total)",
            reconcile_errors.clone(),
        );
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register("reconcile_duration_seconds", "Time one reconcile takes, by kind", duration.clone());
        let placement_failures = Counter::default();
        registry.register(
            "placement_failures",
            "Attempts to place a CatalystVM that found no host",
            placement_failures.clone(),
        );
        let host_cpu_allocated = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "host_cpu_allocated_cores",
            "Cores the VMs on a CatalystHost take",
            host_cpu_allocated.clone(),
        );
        let host_cpu_free = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register("host_cpu_free_cores", "Cores a CatalystHost has left", host_cpu_free.clone());
        let host_memory_allocated = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "host_memory_allocated_bytes",
            "Memory the VMs on a CatalystHost take",
            host_memory_allocated.clone(),
        );
        let host_memory_free = Family::<HostLabel, Gauge<f64, AtomicU64>>::default();
        registry.register("host_memory_free_bytes", "Memory a CatalystHost has left", host_memory_free.clone());
        let pinned = Family::<PinnedLabels, Gauge>::default();
        registry.register(
            "pinned",
            "VMs and replicas by the verdict on their cores (Pinned, SharedCores, NotExclusive, CrossNUMA, NoReport)",
            pinned.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            duration,
            placement_failures,
            host_cpu_allocated,
            host_cpu_free,
            host_memory_allocated,
            host_memory_free,
            hosts: std::sync::Mutex::default(),
            pinned,
            verdicts: crate::per_object::PerObject::default(),
        }
    }
}

impl Metrics {
    /// Counts one reconcile of `kind` with its outcome (`ok`, `wait` or `error`) and records
    /// how long it took.
    pub fn reconciled(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { kind, outcome }).inc();
        self.duration.get_or_create(&KindLabel { kind }).observe(took.as_secs_f64());
    }

    /// Counts the verdicts of an object's VM or replicas (`subject`) in place of its last ones.
    pub fn verdicts(
        &self,
        kind: &str,
        key: &ObjectKey,
        subject: &'static str,
        verdicts: impl IntoIterator<Item = &'static str>,
    ) {
        let now: Vec<PinnedLabels> = verdicts.into_iter().map(|verdict| PinnedLabels { subject, verdict }).collect();
        for label in &now {
            self.pinned.get_or_create(label).inc();
        }
        let before = self.verdicts.lock().insert(crate::per_object::object_id(kind, key), now);
        for label in before.iter().flatten() {
            self.pinned.get_or_create(label).dec();
        }
    }

    /// Takes the verdicts of objects `exists` no longer finds off the gauges.
    pub fn forget_verdicts(&self, exists: impl Fn(&str, &ObjectKey) -> bool) {
        let mut verdicts = self.verdicts.lock();
        verdicts.retain(|(kind, key), labels| {
            let keep = exists(kind, key);
            if !keep {
                for label in labels.iter() {
                    self.pinned.get_or_create(label).dec();
                }
            }
            keep
        });
    }

    /// Sets a host's allocation gauges.
    pub fn host(&self, host: &str, allocated: catalyst_core::planner::Res, free: catalyst_core::planner::Res) {
        self.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(host.to_string());
        let label = HostLabel { host: host.to_string() };
        // Cores with their fraction: a launcher pod's sidecar asks for millicores.
        self.host_cpu_allocated.get_or_create(&label).set(allocated.millicores as f64 / 1000.0);
        self.host_cpu_free.get_or_create(&label).set(free.millicores as f64 / 1000.0);
        self.host_memory_allocated.get_or_create(&label).set(allocated.memory as f64);
        self.host_memory_free.get_or_create(&label).set(free.memory as f64);
    }

    /// How many hosts have gauges.
    pub fn hosts_reported(&self) -> usize {
        self.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Removes the gauges of hosts not `present` (hosts deleted, or out of the pool), so a
    /// dashboard does not show a host that is gone.
    pub fn forget_hosts_except(&self, present: impl Fn(&str) -> bool) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for gone in hosts.iter().filter(|h| !present(h)) {
            let label = HostLabel { host: gone.clone() };
            self.host_cpu_allocated.remove(&label);
            self.host_cpu_free.remove(&label);
            self.host_memory_allocated.remove(&label);
            self.host_memory_free.remove(&label);
        }
        hosts.retain(|h| present(h));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_core::planner::Res;

    #[test]
    fn encodes_reconciles_durations_and_host_figures() {
        let metrics = Metrics::default();
        for outcome in ["ok", "wait", "error"] {
            metrics.reconciled("CatalystVM", outcome, Duration::from_millis(3));
        }
        metrics.placement_failures.inc();
        metrics.host("host-1", Res::millicores(226_015, 1 << 40), Res::cores(22, 1 << 30));
        let text = metrics.encode();
        for line in [
            "catalyst_reconciles_total{kind=\"CatalystVM\",outcome=\"ok\"} 1",
            "catalyst_reconciles_total{kind=\"CatalystVM\",outcome=\"wait\"} 1",
            "catalyst_reconciles_total{kind=\"CatalystVM\",outcome=\"error\"} 1",
            "catalyst_reconcile_duration_seconds_count{kind=\"CatalystVM\"} 3",
            "catalyst_placement_failures_total 1",
            "catalyst_host_cpu_allocated_cores{host=\"host-1\"} 226.015",
            "catalyst_host_cpu_free_cores{host=\"host-1\"} 22.0",
            "catalyst_host_memory_free_bytes{host=\"host-1\"} 1073741824.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn verdicts_replace_the_last_ones_and_leave_with_their_object() {
        let metrics = Metrics::default();
        let (sms, db) = (ObjectKey::namespaced("team", "sms"), ObjectKey::namespaced("team", "db"));
        metrics.verdicts("ServiceGroup", &sms, "replica", ["Pinned", "Pinned", "NoReport"]);
        metrics.verdicts("ServiceGroup", &sms, "replica", ["Pinned", "SharedCores", "SharedCores"]);
        metrics.verdicts("CatalystVM", &db, "vm", ["Pinned"]);
        let text = metrics.encode();
        for line in [
            "catalyst_pinned{subject=\"replica\",verdict=\"Pinned\"} 1",
            "catalyst_pinned{subject=\"replica\",verdict=\"SharedCores\"} 2",
            "catalyst_pinned{subject=\"replica\",verdict=\"NoReport\"} 0",
            "catalyst_pinned{subject=\"vm\",verdict=\"Pinned\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        metrics.forget_verdicts(|kind, _| kind == "CatalystVM");
        let text = metrics.encode();
        assert!(text.contains("catalyst_pinned{subject=\"replica\",verdict=\"SharedCores\"} 0"), "{text}");
        assert!(text.contains("catalyst_pinned{subject=\"vm\",verdict=\"Pinned\"} 1"), "{text}");
    }

    #[test]
    fn a_host_that_is_gone_loses_its_gauges() {
        let metrics = Metrics::default();
        metrics.host("host-1", Res::cores(1, 1), Res::cores(1, 1));
        metrics.host("host-2", Res::cores(2, 2), Res::cores(2, 2));
        assert_eq!(metrics.hosts_reported(), 2);
        metrics.forget_hosts_except(|host| host == "host-2");
        assert_eq!(metrics.hosts_reported(), 1);
        let text = metrics.encode();
        assert!(!text.contains("host=\"host-1\""), "{text}");
        assert!(text.contains("catalyst_host_cpu_free_cores{host=\"host-2\"} 2.0"), "{text}");
    }
}
