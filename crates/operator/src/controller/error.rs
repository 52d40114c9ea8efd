//! What a reconcile could not do, and what becomes of it: a wait (looked at again soon, counted
//! as `outcome="wait"`) or a failure (backed off per object, counted in
//! `catalyst_reconcile_errors_total`).

use catalyst_core::key::{HostName, ObjectKey};

/// What a reconcile could not do, named by the call that failed; [`Error::label`] is its
/// `catalyst_reconcile_errors_total` label; [`Error::is_wait`] says which are waits, not failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("applying {kind} {name}: {source}")]
    ApplyChild { kind: String, name: String, source: kube::Error },
    #[error("deleting {kind} {name}: {source}")]
    DeleteChild { kind: &'static str, name: String, source: kube::Error },
    #[error("listing the CatalystHosts of the pool: {0}")]
    ListHosts(#[source] kube::Error),
    #[error("reading CatalystVM {vm}: {source}")]
    ReadVm { vm: ObjectKey, source: kube::Error },
    #[error("reading the join Secret {secret}: {source}")]
    ReadJoinSecret { secret: ObjectKey, source: kube::Error },
    #[error("reserving room on CatalystHost {host}: {source}")]
    ReserveHost { host: HostName, source: kube::Error },
    #[error("releasing {vm} from CatalystHost {host}: {source}")]
    ReleaseHost { vm: ObjectKey, host: HostName, source: kube::Error },
    #[error("writing the status of {kind} {name}: {source}")]
    WriteStatus { kind: String, name: String, source: kube::Error },
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("placing {vm} on {host} raced with another placement; planning again")]
    PlacementRace { vm: ObjectKey, host: HostName },
    /// A write that lost to another (HTTP 409): the watch brings the newer version.
    #[error("writing {kind} {name} raced with another write; reading it again")]
    Conflict { kind: &'static str, name: String },
    #[error("waiting for VirtualMachine {0} to be deleted")]
    WaitingForDeletion(ObjectKey),
    #[error("reading VirtualMachineInstance {vm}: {source}")]
    ReadInstance { vm: ObjectKey, source: kube::Error },
    #[error("labelling node {node} as verified: {source}")]
    LabelNode { node: String, source: kube::Error },
    #[error("keeping the join token of {vm}: {source}")]
    JoinToken { vm: ObjectKey, source: kube::Error },
    #[error("reading random bytes for a join token: {0}")]
    Random(#[source] std::io::Error),
    #[error("deciding the certificate signing request {csr}: {source}")]
    DecideCertificate { csr: String, source: kube::Error },
    #[error("evicting replica {pod} to recreate it on cores of its own: {source}")]
    EvictReplica { pod: String, source: kube::Error },
    #[error("migrating {vm} to its new host: {source}")]
    Migrate { vm: ObjectKey, source: kube::Error },
}

impl Error {
    /// The error inside the finalizer's wrapping, where there is one.
    fn inner(&self) -> &Error {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Error::Finalizer(wrapped) => match wrapped.as_ref() {
                Finalizer::ApplyFailed(inner) | Finalizer::CleanupFailed(inner) => inner.inner(),
                _ => self,
            },
            other => other,
        }
    }

    /// A short, fixed name of what failed, for metrics.
    pub fn label(&self) -> &'static str {
        use kube::runtime::finalizer::Error as Finalizer;
        match self.inner() {
            Error::ApplyChild { .. } => "apply_child",
            Error::DeleteChild { .. } => "delete_child",
            Error::ListHosts(_) => "list_hosts",
            Error::ReadVm { .. } => "read_vm",
            Error::ReadJoinSecret { .. } => "read_join_secret",
            Error::ReserveHost { .. } => "reserve_host",
            Error::ReleaseHost { .. } => "release_host",
            Error::WriteStatus { .. } => "write_status",
            Error::PlacementRace { .. } => "placement_race",
            Error::Conflict { .. } => "conflict",
            Error::WaitingForDeletion(_) => "waiting_for_deletion",
            Error::ReadInstance { .. } => "read_instance",
            Error::LabelNode { .. } => "label_node",
            Error::JoinToken { .. } => "join_token",
            Error::Random(_) => "random",
            Error::DecideCertificate { .. } => "decide_certificate",
            Error::EvictReplica { .. } => "evict_replica",
            Error::Migrate { .. } => "migrate",
            Error::Finalizer(wrapped) => match wrapped.as_ref() {
                Finalizer::AddFinalizer(_) => "add_finalizer",
                Finalizer::RemoveFinalizer(_) => "remove_finalizer",
                _ => "finalizer",
            },
        }
    }

    /// Expected waits (a deletion under way; a write, placements included, that lost a
    /// compare-and-swap: the one convention for a 409 in every controller): the object is looked
    /// at again soon, its backoff is not raised, and the reconcile counts as `outcome="wait"`,
    /// not in `catalyst_reconcile_errors_total`.
    pub fn is_wait(&self) -> bool {
        matches!(self.inner(), Error::PlacementRace { .. } | Error::Conflict { .. } | Error::WaitingForDeletion(_))
            || self.finalizer_read_stale()
    }

    /// kube-runtime's finalizer helper guards its JSON patch with a `test` of the finalizers it
    /// read in the cache; a cache behind the API server (a reconcile woken by another object
    /// before the watch brought the VM's own write) fails it with 422 (kube-apiserver v1.32,
    /// `endpoints/handlers/patch.go`, `applyJSPatch`). A lost race like a 409: the watch brings
    /// the newer version, which wakes the object. At 10,000 VMs, 1 to 2% of them met it.
    fn finalizer_read_stale(&self) -> bool {
        use kube::runtime::finalizer::Error as Finalizer;
        match self {
            Error::Finalizer(wrapped) => matches!(
                wrapped.as_ref(),
                Finalizer::AddFinalizer(kube::Error::Api(status)) | Finalizer::RemoveFinalizer(kube::Error::Api(status))
                    if status.code == 422
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use kube::runtime::finalizer::Error as Finalizer;

    fn refused(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..kube::core::Status::failure("testing value", "Invalid")
        }))
    }

    /// A finalizer's `test` that a stale cache failed is a wait; the same write failing
    /// otherwise is a failure.
    #[test]
    fn a_finalizer_patch_refused_for_a_stale_read_is_a_wait() {
        let stale = Error::Finalizer(Box::new(Finalizer::AddFinalizer(refused(422))));
        assert!(stale.is_wait());
        assert_eq!(stale.label(), "add_finalizer");
        assert!(Error::Finalizer(Box::new(Finalizer::RemoveFinalizer(refused(422)))).is_wait());
        assert!(!Error::Finalizer(Box::new(Finalizer::AddFinalizer(refused(500)))).is_wait());
        assert!(!Error::Finalizer(Box::new(Finalizer::AddFinalizer(refused(403)))).is_wait());
    }
}
