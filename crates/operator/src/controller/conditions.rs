//! Standard `metav1.Condition`s: set one, keeping its transition time while its status holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types the three kinds report.
pub const READY: &str = "Ready";
pub const SCHEDULED: &str = "Scheduled";
pub const NODE_JOINED: &str = "NodeJoined";
pub const NODE_VERIFIED: &str = "NodeVerified";
pub const OVERCOMMITTED: &str = "Overcommitted";
pub const RESTART_REQUIRED: &str = "RestartRequired";

/// A condition's status: `metav1.ConditionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    /// What the condition says cannot be told now.
    Unknown,
}

impl From<bool> for Status {
    fn from(status: bool) -> Self {
        if status { Status::True } else { Status::False }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// A condition as the reconciler decides it, before times and generations are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: Status,
    pub reason: &'static str,
    pub message: String,
}

pub fn wanted(
    type_: &'static str,
    status: impl Into<Status>,
    reason: &'static str,
    message: impl Into<String>,
) -> Wanted {
    Wanted { type_, status: status.into(), reason, message: message.into() }
}

/// The conditions to write: the old ones with each wanted one set, keeping the old transition
/// time when its status did not change (so an unchanged world produces an identical status,
/// and no write). Conditions not wanted this time are kept as they were.
pub fn merge(old: &[Condition], wanted: &[Wanted], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut merged: Vec<Condition> =
        old.iter().filter(|c| !wanted.iter().any(|w| w.type_ == c.type_)).cloned().collect();
    merged.extend(wanted.iter().map(|w| {
        let status = w.status.as_str().to_string();
        let previous = old.iter().find(|c| c.type_ == w.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        Condition {
            type_: w.type_.to_string(),
            status,
            reason: w.reason.to_string(),
            message: w.message.clone(),
            observed_generation: generation,
            last_transition_time,
        }
    }));
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn keeps_the_transition_time_while_the_status_holds() {
        let first = merge(&[], &[wanted(READY, false, "Pending", "waiting")], Some(1), &at(100));
        assert_eq!(first[0].last_transition_time, at(100));
        let same = merge(&first, &[wanted(READY, false, "Pending", "still waiting")], Some(2), &at(200));
        assert_eq!(same[0].last_transition_time, at(100));
        assert_eq!((same[0].message.as_str(), same[0].observed_generation), ("still waiting", Some(2)));
        let flipped = merge(&same, &[wanted(READY, true, "Ready", "up")], Some(2), &at(300));
        assert_eq!((flipped[0].status.as_str(), flipped[0].last_transition_time.clone()), ("True", at(300)));
        let both = merge(&flipped, &[wanted(SCHEDULED, true, "Placed", "on host-1")], Some(2), &at(400));
        assert_eq!(both.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY, SCHEDULED]);
    }
}
