//! What stops a reconcile that the user must fix or wait out: one enum, with the reason its
//! `Ready=False` condition carries, its message, and when the object is looked at again. A
//! refusal never touches what runs.

use kube::runtime::controller::Action;
use std::time::Duration;

/// How soon an object waiting for something outside the operator's hands is looked at again.
pub const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The spec breaks a rule (the same offline validation `kubectl catalyst validate` runs).
    InvalidSpec {
        errors: String,
    },
    /// No host has room for the VM now.
    Unschedulable {
        why: String,
    },
    /// The VM's host is gone.
    HostMissing {
        host: String,
    },
    /// A placed VM's new size does not fit its host; placed VMs never move.
    DoesNotFitHost {
        why: String,
    },
    JoinSecretMissing {
        secret: String,
        namespace: String,
    },
    JoinSecretInvalid {
        why: String,
    },
    /// The VM's Kubernetes release cannot join this API server.
    VersionSkew {
        why: String,
    },
    /// The ServiceGroup's CatalystVM does not exist.
    VmNotFound {
        vm: String,
        namespace: String,
    },
    /// The ServiceGroup does not fit what its VM's node offers.
    DoesNotFit {
        why: String,
    },
}

impl Refusal {
    /// The condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::InvalidSpec { .. } => "InvalidSpec",
            Refusal::Unschedulable { .. } => "Unschedulable",
            Refusal::HostMissing { .. } => "HostMissing",
            Refusal::DoesNotFitHost { .. } => "DoesNotFitHost",
            Refusal::JoinSecretMissing { .. } => "JoinSecretMissing",
            Refusal::JoinSecretInvalid { .. } => "JoinSecretInvalid",
            Refusal::VersionSkew { .. } => "VersionSkew",
            Refusal::VmNotFound { .. } => "VMNotFound",
            Refusal::DoesNotFit { .. } => "DoesNotFit",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::InvalidSpec { errors } => format!("{errors}; nothing running was touched"),
            Refusal::Unschedulable { why } | Refusal::JoinSecretInvalid { why } => why.clone(),
            Refusal::HostMissing { host } => format!("CatalystHost {host} is gone; the VM is left as it is"),
            Refusal::DoesNotFitHost { why } => format!("{why}; the running VM is left as it was"),
            Refusal::VersionSkew { why } => {
                format!("spec.node.software.kubernetesVersion: {why}; nothing running was touched")
            }
            Refusal::JoinSecretMissing { secret, namespace } => {
                format!("join Secret {secret} not found in namespace {namespace}")
            }
            Refusal::VmNotFound { vm, namespace } => {
                format!("CatalystVM {vm} not found in namespace {namespace}; nothing running was touched")
            }
            Refusal::DoesNotFit { why } => format!("{why}; nothing running was touched"),
        }
    }

    /// When to look again: at once when the object or what it names changes (the watches bring
    /// that), after a while when what is missing is outside the operator's watches.
    pub fn requeue(&self) -> Action {
        match self {
            Refusal::HostMissing { .. } => Action::requeue(WAIT),
            // The API server's version is read again every few minutes, not watched.
            Refusal::VersionSkew { .. } => Action::requeue(Duration::from_secs(300)),
            // Hosts are watched: freed room wakes the VM; the resync is a safety net.
            Refusal::Unschedulable { .. } => Action::requeue(Duration::from_secs(300)),
            _ => Action::await_change(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_waits_for_a_change_unless_what_it_needs_is_not_watched() {
        let secret = Refusal::JoinSecretMissing { secret: "join".into(), namespace: "team".into() };
        assert_eq!(secret.reason(), "JoinSecretMissing");
        assert_eq!(secret.message(), "join Secret join not found in namespace team");
        assert_eq!(secret.requeue(), Action::await_change(), "Secrets are watched");
        assert_eq!(Refusal::HostMissing { host: "h".into() }.requeue(), Action::requeue(WAIT));
        let invalid = Refusal::InvalidSpec { errors: "spec.cpu: must be at least 1".into() };
        assert_eq!(invalid.message(), "spec.cpu: must be at least 1; nothing running was touched");
        assert_eq!(invalid.requeue(), Action::await_change());
        assert_eq!(Refusal::VmNotFound { vm: "a".into(), namespace: "b".into() }.reason(), "VMNotFound");
    }
}
