//! The reconcilers: thin layers that read the world, render the desired state with the pure
//! functions of [`catalyst_core::render`] and [`catalyst_core::planner`], apply it with server-side apply under
//! one field manager, and report status, conditions and events.
//!
//! Errors: a malformed object (one that does not deserialize) never stops the watch of the
//! others (each controller watches `DeserializeGuard<K>`); it gets a warning event and waits for
//! a change. An invalid spec is reported in the object's status and also waits for a change.
//! A transient error backs off exponentially per object ([`Backoff`]).

pub mod apply;
pub mod approval;
pub mod conditions;
pub mod context;
pub mod error;
pub mod evacuation;
pub mod events;
pub mod group;
pub mod host;
pub mod index;
pub mod join_token;
pub mod moves;
pub mod pinning;
pub mod placement;
pub mod refusal;
pub mod request;
pub mod runtime;
pub mod status;
pub mod verify;
pub mod vm;

pub use crate::per_object::{PerObject, object_id};
pub use context::{
    Backoff, CONTROLLER_NAME, Context, Stores, Written, digest, error_policy, key_of, ledger_of, node_is_ready, now,
    object_ref, read_unseen, reconcile_guarded, report_malformed, valid, vm_key,
};
pub use error::Error;
pub use runtime::run;
pub use status::{Reported, merge_patch, patch_status, refuse, report};

/// The finalizer on CatalystVMs: their VirtualMachine goes, and their host's capacity is
/// released, before they do.
pub const FINALIZER: &str = "catalyst.io/cleanup";
