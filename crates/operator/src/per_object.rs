//! What the operator remembers per object across reconciles, shared by the controllers and the
//! metrics (at the crate root, so that neither imports the other for it).

use catalyst_core::key::ObjectKey;
use std::collections::HashMap;
use std::sync::Mutex;

/// What the operator remembers per object, by (kind, key), across the reconciles that share
/// it. A panic in one reconcile leaves each entry whole (every change is one map operation),
/// so a poisoned lock is taken as it is.
pub struct PerObject<V>(Mutex<HashMap<(String, ObjectKey), V>>);

impl<V> Default for PerObject<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<V> PerObject<V> {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, ObjectKey), V>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the objects `exists` no longer finds.
    pub fn prune(&self, exists: impl Fn(&str, &ObjectKey) -> bool) {
        self.lock().retain(|(kind, key), _| exists(kind, key));
    }
}

/// The (kind, key) an entry of [`PerObject`] is kept under.
pub fn object_id(kind: &str, key: &ObjectKey) -> (String, ObjectKey) {
    (kind.to_string(), key.clone())
}
