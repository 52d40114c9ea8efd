//! Secondary indexes kept by a watch beside its cache, so a reconcile finds the objects that
//! concern it without scanning every object (it did, several times per reconcile, which made
//! convergence grow with the square of the layout): the ServiceGroups of each VM, and the
//! CatalystVMs on each host (or on none yet).

use catalyst_api::{CatalystVM, ServiceGroup};
use kube::core::DeserializeGuard;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

/// Objects by a key computed from each: key -> their (namespace, name), and back.
pub struct Index<K> {
    key: fn(&K) -> Option<String>,
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, BTreeSet<(String, String)>>,
    key_of: HashMap<(String, String), String>,
}

/// The ServiceGroups of each VM: key `namespace/vm`.
pub type GroupsByVm = Index<DeserializeGuard<ServiceGroup>>;
/// The CatalystVMs by the host their status names; key `""` for the VMs on none.
pub type VmsByHost = Index<DeserializeGuard<CatalystVM>>;

impl GroupsByVm {
    pub fn groups() -> Self {
        Self::new(|group| {
            let valid = group.0.as_ref().ok()?;
            Some(catalyst_core::key::key(&valid.namespace().unwrap_or_default(), &valid.spec.vm))
        })
    }
}

impl VmsByHost {
    pub fn vms() -> Self {
        Self::new(|vm| Some(vm.0.as_ref().ok()?.status.as_ref().and_then(|s| s.host.clone()).unwrap_or_default()))
    }
}

impl<K: Resource> Index<K> {
    fn new(key: fn(&K) -> Option<String>) -> Self {
        Self { key, entries: RwLock::default() }
    }

    /// This index, of these objects (a cache's whole content).
    pub fn of<'a>(self, objects: impl IntoIterator<Item = &'a K>) -> Self
    where
        K: 'a,
    {
        self.rebuild(objects);
        self
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An object created or changed.
    pub fn apply(&self, object: &K) {
        let id = (object.namespace().unwrap_or_default(), object.name_any());
        let key = (self.key)(object);
        let mut entries = self.write();
        entries.remove(&id);
        if let Some(key) = key {
            entries.by_key.entry(key.clone()).or_default().insert(id.clone());
            entries.key_of.insert(id, key);
        }
    }

    pub fn delete(&self, object: &K) {
        self.write().remove(&(object.namespace().unwrap_or_default(), object.name_any()));
    }

    /// After a (re)list: the index of exactly these objects.
    pub fn rebuild<'a>(&self, objects: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        *self.write() = Entries::default();
        for object in objects {
            self.apply(object);
        }
    }

    /// The (namespace, name) of the objects under `key`.
    pub fn get(&self, key: &str) -> Vec<(String, String)> {
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.by_key.get(key).map(|ids| ids.iter().cloned().collect()).unwrap_or_default()
    }
}

impl Entries {
    fn remove(&mut self, id: &(String, String)) {
        if let Some(old) = self.key_of.remove(id)
            && let Some(ids) = self.by_key.get_mut(&old)
        {
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, vm: &str) -> DeserializeGuard<ServiceGroup> {
        DeserializeGuard(Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "ServiceGroup",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"vm": vm, "replicas": 1, "cpu": 1, "memory": "1Gi", "template": {"image": "x"}}
        }))
        .unwrap()))
    }

    fn names(ids: Vec<(String, String)>) -> Vec<String> {
        ids.into_iter().map(|(_, name)| name).collect()
    }

    #[test]
    fn follows_objects_that_change_key_and_objects_that_go() {
        let index = GroupsByVm::groups().of([&group("a", "vm-1"), &group("b", "vm-1")]);
        assert_eq!(names(index.get("team/vm-1")), ["a", "b"]);
        index.apply(&group("b", "vm-2"));
        assert_eq!(names(index.get("team/vm-1")), ["a"]);
        assert_eq!(names(index.get("team/vm-2")), ["b"]);
        index.delete(&group("a", "vm-1"));
        assert!(index.get("team/vm-1").is_empty());
        assert!(index.get("other/vm-2").is_empty());
    }
}
