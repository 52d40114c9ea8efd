//! Leader election on a `coordination.k8s.io/v1` Lease, so two or three replicas can run and
//! exactly one writes. kube-runtime has none of its own; this is the small loop client-go's
//! leader election runs, with every write a compare-and-swap on the Lease's resourceVersion.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Duration;

/// What to do with the Lease, given what it says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It is vacant or its holder stopped renewing: take it over.
    TakeOver,
    /// Someone else holds it and is renewing: wait.
    Follow { holder: String },
}

/// Decides the next step. A Lease expires `leaseDurationSeconds` after its last renewal.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Step {
    let Some(spec) = lease.map(|l| l.spec.clone().unwrap_or_default()) else { return Step::Create };
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    match renewed {
        Some(renewed) if renewed + duration > now => Step::Follow { holder },
        _ => Step::TakeOver,
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), duration }
    }

    fn held_spec(&self, now: Timestamp, previous: Option<&LeaseSpec>, taking_over: bool) -> LeaseSpec {
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: if taking_over {
                Some(MicroTime(now))
            } else {
                previous.and_then(|p| p.acquire_time.clone())
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if taking_over && previous.is_some() { transitions + 1 } else { transitions }),
            ..LeaseSpec::default()
        }
    }

    /// One round: acquire or renew. Whether we hold the Lease afterwards. A write that lost a
    /// race (409) means someone else holds it.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let step = decide(current.as_ref(), &self.identity, now);
        let written = match (step, current) {
            (Step::Follow { .. }, _) => return Ok(false),
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(self.held_spec(now, None, true)),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (step, Some(mut lease)) => {
                lease.spec = Some(self.held_spec(now, lease.spec.as_ref(), step == Step::TakeOver));
                self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
            }
            (_, None) => return Ok(false),
        };
        match written {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over without waiting for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
    }

    /// Waits until this replica holds the Lease, trying every `retry`.
    pub async fn acquire(&self, retry: Duration) {
        loop {
            match self.round().await {
                Ok(true) => return,
                Ok(false) => tracing::debug!("standing by; the lease is held by another replica"),
                Err(error) => tracing::warn!(%error, "could not read or write the lease"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews every `every`; returns as soon as the Lease is lost: taken by another replica, or
    /// not renewed for `deadline` (the API server unreachable), whichever comes first.
    pub async fn hold(&self, every: Duration, deadline: Duration) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.round().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("the lease was taken by another replica");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not renew the lease");
                    if last_renewal.elapsed() >= deadline {
                        tracing::error!("could not renew the lease within its renew deadline");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_at: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn creates_renews_follows_and_takes_over_an_expired_lease() {
        assert_eq!(decide(None, "a", at(100)), Step::Create);
        assert_eq!(decide(Some(&lease(Some("a"), 90, 15)), "a", at(100)), Step::Renew);
        assert_eq!(decide(Some(&lease(Some("b"), 90, 15)), "a", at(100)), Step::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&lease(Some("b"), 80, 15)), "a", at(100)), Step::TakeOver, "expired at 95");
        assert_eq!(decide(Some(&lease(None, 99, 15)), "a", at(100)), Step::TakeOver, "released");
        assert_eq!(decide(Some(&lease(Some(""), 99, 15)), "a", at(100)), Step::TakeOver, "released");
    }
}
