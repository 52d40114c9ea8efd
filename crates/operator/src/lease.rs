//! Leader election on a `coordination.k8s.io/v1` Lease, so two or three replicas can run and
//! exactly one writes. kube-runtime has none of its own; this follows client-go's
//! (Kubernetes v1.32, `staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go`):
//!
//! - Every write is a compare-and-swap on the Lease's resourceVersion.
//! - A standby times a holder's lease from when it *observed* the record change, on its own
//!   monotonic clock (client-go's `isLeaseValid`: `observedTime + leaseDuration`), never from
//!   the `renewTime` another machine's clock wrote: clock skew between nodes cannot make it take
//!   over early.
//! - The leader bounds every renewal round by its renew deadline (client-go runs each round
//!   under a context with that timeout) and stops the moment the deadline passes, even while a
//!   request hangs.
//!
//! Why two replicas never lead at once: the leader stops at `s + renewDeadline`, `s` being when
//! its last successful renewal *started*. A standby takes over no sooner than `leaseDuration`
//! after it observed that renewal, which it can only observe once written, so after `s`; and
//! [`Timing::new`] refuses a renew deadline that is not shorter than the lease duration.
//!
//! [`Election`] is what the operator's main loop uses, so a well-kept crate's election can take
//! this one's place once one supports kube 5.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What the operator's main loop needs from a leader election.
pub trait Election {
    /// Returns once this replica leads.
    fn acquire(&self) -> impl Future<Output = ()>;
    /// Keeps the lead; returns the moment it is lost, and why.
    fn hold(&self) -> impl Future<Output = Lost>;
    /// Gives the lead up (on shutdown), so a standby need not wait for it to expire.
    fn release(&self) -> impl Future<Output = Result<(), LeaseError>>;
}

/// Why [`Election::hold`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// A renewal found the Lease held by someone else, released, or gone.
    Taken { holder: Option<String> },
    /// No renewal succeeded within the renew deadline (the API server slow or unreachable).
    Deadline,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("Lease {name}: {source}")]
    Api { name: String, source: kube::Error },
    #[error("Lease {name}: no answer within {timeout:?}")]
    TimedOut { name: String, timeout: Duration },
}

/// The election's three durations, checked as client-go's `NewLeaderElector` checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A standby takes over a Lease it has not seen change for this long.
    pub duration: Duration,
    /// The leader stops when no renewal succeeded for this long.
    pub renew_deadline: Duration,
    /// Time between rounds (client-go's RetryPeriod).
    pub retry: Duration,
}

/// client-go's `JitterFactor`: the renew deadline must leave room for more than one retry period.
const JITTER_FACTOR_TENTHS: u128 = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error("--{flag} must be at least 1 second")]
    Zero { flag: &'static str },
    #[error(
        "--lease-duration-seconds ({duration:?}) must be greater than --lease-renew-deadline-seconds ({renew_deadline:?}), or a standby could take over while the leader still writes"
    )]
    DeadlineNotShorterThanDuration { duration: Duration, renew_deadline: Duration },
    #[error(
        "--lease-renew-deadline-seconds ({renew_deadline:?}) must be greater than 1.2 x --lease-renew-seconds ({retry:?})"
    )]
    RetryTooLongForDeadline { renew_deadline: Duration, retry: Duration },
}

impl Timing {
    pub fn new(duration: Duration, renew_deadline: Duration, retry: Duration) -> Result<Self, TimingError> {
        for (value, flag) in [
            (duration, "lease-duration-seconds"),
            (renew_deadline, "lease-renew-deadline-seconds"),
            (retry, "lease-renew-seconds"),
        ] {
            if value < Duration::from_secs(1) {
                return Err(TimingError::Zero { flag });
            }
        }
        if duration <= renew_deadline {
            return Err(TimingError::DeadlineNotShorterThanDuration { duration, renew_deadline });
        }
        if renew_deadline.as_millis() * 10 <= retry.as_millis() * JITTER_FACTOR_TENTHS {
            return Err(TimingError::RetryTooLongForDeadline { renew_deadline, retry });
        }
        Ok(Self { duration, renew_deadline, retry })
    }
}

/// What to do with the Lease, given what it says and how long it has looked the same to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It is vacant, or its holder has not renewed it for a whole lease duration: take it over.
    TakeOver,
    /// Someone else holds it and renews it: wait.
    Follow { holder: String },
}

/// Decides the next step. `unchanged_for` is how long this replica has seen the same record,
/// on its own clock.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Step {
    let Some(spec) = lease else { return Step::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    if unchanged_for < duration { Step::Follow { holder } } else { Step::TakeOver }
}

/// Whether a round may take the Lease or only keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Acquire,
    Renew,
}

/// The record as last seen and when (client-go's observedRecord and observedTime).
struct Observed {
    spec: Option<LeaseSpec>,
    at: Instant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Mutex<Option<Observed>>,
    /// When the last successful acquisition or renewal started.
    renewed: Mutex<Option<Instant>>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: Mutex::new(None),
            renewed: Mutex::new(None),
        }
    }

    /// Records what the Lease says now; how long it has said it.
    fn observe(&self, spec: Option<&LeaseSpec>, now: Instant) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match observed.as_ref() {
            Some(seen) if seen.spec.as_ref() == spec => now.saturating_duration_since(seen.at),
            _ => {
                *observed = Some(Observed { spec: spec.cloned(), at: now });
                Duration::ZERO
            }
        }
    }

    fn held_spec(&self, now: Timestamp, previous: Option<&LeaseSpec>, taking_over: bool) -> LeaseSpec {
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX)),
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

    /// One round: read the Lease, decide, write. Whether we hold it afterwards. A round to
    /// renew never takes the Lease back from another holder: the lead was lost. A write that
    /// lost a race (409) means someone else holds it.
    async fn round(&self, intent: Intent) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let unchanged_for = self.observe(spec, Instant::now());
        let step = decide(spec, &self.identity, unchanged_for);
        let now = Timestamp::now();
        let written = match (step, current) {
            (Step::Follow { .. }, _) => return Ok(false),
            (step, _) if intent == Intent::Renew && step != Step::Renew => return Ok(false),
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(self.held_spec(now, None, true)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (step, Some(mut lease)) => {
                lease.spec = Some(self.held_spec(now, lease.spec.as_ref(), step == Step::TakeOver));
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (_, None) => return Ok(false),
        };
        match written {
            Ok(lease) => {
                self.observe(lease.spec.as_ref(), Instant::now());
                Ok(true)
            }
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn renewed(&self) -> Option<Instant> {
        *self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_renewed(&self, started: Instant) {
        *self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(started);
    }

    fn holder(&self) -> Option<String> {
        let observed = self.observed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        observed.as_ref()?.spec.as_ref()?.holder_identity.clone().filter(|h| !h.is_empty())
    }
}

impl Election for Elector {
    /// Tries every retry period; a round that hangs is given up after the renew deadline.
    async fn acquire(&self) {
        loop {
            let started = Instant::now();
            match tokio::time::timeout(self.timing.renew_deadline, self.round(Intent::Acquire)).await {
                Ok(Ok(true)) => {
                    self.set_renewed(started);
                    return;
                }
                Ok(Ok(false)) => tracing::debug!(holder = ?self.holder(), "standing by; another replica leads"),
                Ok(Err(error)) => tracing::warn!(%error, "could not read or write the lease"),
                Err(_) => tracing::warn!(timeout = ?self.timing.renew_deadline, "the lease round did not finish"),
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    /// Renews every retry period. Each round is cut off at the renew deadline, counted from the
    /// start of the last successful renewal, so a hung request cannot keep this replica leading.
    async fn hold(&self) -> Lost {
        let mut renewed = self.renewed().unwrap_or_else(Instant::now);
        let mut next = renewed + self.timing.retry;
        loop {
            let deadline = renewed + self.timing.renew_deadline;
            tokio::time::sleep_until(next.min(deadline)).await;
            if Instant::now() >= deadline {
                return Lost::Deadline;
            }
            let started = Instant::now();
            match tokio::time::timeout_at(deadline, self.round(Intent::Renew)).await {
                Err(_) => return Lost::Deadline,
                Ok(Ok(true)) => {
                    renewed = started;
                    self.set_renewed(started);
                }
                Ok(Ok(false)) => return Lost::Taken { holder: self.holder() },
                Ok(Err(error)) => tracing::warn!(%error, "could not renew the lease"),
            }
            next = started + self.timing.retry;
        }
    }

    async fn release(&self) -> Result<(), LeaseError> {
        let name = self.name.clone();
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
            let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
            if spec.holder_identity.as_deref() != Some(&self.identity) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ())
        };
        match tokio::time::timeout(self.timing.renew_deadline, release).await {
            Ok(result) => result.map_err(|source| LeaseError::Api { name, source }),
            Err(_) => Err(LeaseError::TimedOut { name, timeout: self.timing.renew_deadline }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn creates_renews_follows_and_takes_over_a_lease_unchanged_for_its_duration() {
        assert_eq!(decide(None, "a", S(0)), Step::Create);
        assert_eq!(decide(Some(&spec(Some("a"), 15)), "a", S(100)), Step::Renew);
        assert_eq!(decide(Some(&spec(Some("b"), 15)), "a", S(14)), Step::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&spec(Some("b"), 15)), "a", S(15)), Step::TakeOver, "unchanged for 15 s");
        assert_eq!(decide(Some(&spec(None, 15)), "a", S(0)), Step::TakeOver, "released");
        assert_eq!(decide(Some(&spec(Some(""), 15)), "a", S(0)), Step::TakeOver, "released");
    }

    #[test]
    fn timings_follow_client_gos_rules() {
        assert!(Timing::new(S(15), S(10), S(5)).is_ok(), "the defaults");
        assert!(Timing::new(S(4), S(3), S(1)).is_ok(), "the suite's");
        assert!(matches!(Timing::new(S(10), S(10), S(2)), Err(TimingError::DeadlineNotShorterThanDuration { .. })));
        assert!(matches!(Timing::new(S(15), S(6), S(5)), Err(TimingError::RetryTooLongForDeadline { .. })));
        assert_eq!(Timing::new(S(15), S(10), S(0)), Err(TimingError::Zero { flag: "lease-renew-seconds" }));
    }
}
