//! Secondary indexes kept by a watch beside its cache, so a reconcile finds the objects that
//! concern it without scanning every object (it did, several times per reconcile, which made
//! convergence grow with the square of the layout): the ServiceGroups of each VM, the
//! CatalystVMs on each host (or on none yet), the host whose ledger holds each VM, the VMs that
//! name each join Secret, and the launcher pods of each VM.

use catalyst_api::{CatalystHost, CatalystVM, ServiceGroup};
use catalyst_core::key::{HostName, ObjectKey};
use k8s_openapi::api::core::v1::Pod;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::{Resource, ResourceExt};
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, RwLock};

/// What is kept current with a shared cache before any controller hears of a change: the
/// indexes, and what the operator knows of its children.
pub trait Follower<K>: Send + Sync {
    fn applied(&self, object: &K);
    fn deleted(&self, object: &K);
    /// After a (re)list: exactly these objects.
    fn relisted(&self, objects: &[Arc<K>]);
}

impl<K: Resource + Send + Sync, Key: Eq + Hash + Clone + Send + Sync> Follower<K> for Index<K, Key> {
    fn applied(&self, object: &K) {
        self.apply(object);
    }

    fn deleted(&self, object: &K) {
        self.delete(object);
    }

    fn relisted(&self, objects: &[Arc<K>]) {
        self.rebuild(objects.iter().map(AsRef::as_ref));
    }
}

/// Objects by the keys (of type `Key`) computed from each: key -> the objects' keys, and back.
pub struct Index<K, Key> {
    keys: fn(&K) -> Vec<Key>,
    entries: RwLock<Entries<Key>>,
}

struct Entries<Key> {
    by_key: HashMap<Key, BTreeSet<ObjectKey>>,
    keys_of: HashMap<ObjectKey, Vec<Key>>,
}

impl<Key> Default for Entries<Key> {
    fn default() -> Self {
        Self { by_key: HashMap::new(), keys_of: HashMap::new() }
    }
}

/// The ServiceGroups of each VM.
pub type GroupsByVm = Index<DeserializeGuard<ServiceGroup>, ObjectKey>;
/// The CatalystVMs by the host their status names; `None` for the VMs on none.
pub type VmsByHost = Index<DeserializeGuard<CatalystVM>, Option<HostName>>;
/// The CatalystHosts by the VMs their ledgers hold.
pub type HostsByLedger = Index<DeserializeGuard<CatalystHost>, ObjectKey>;
/// The CatalystVMs by the join Secret they name.
pub type VmsByJoinSecret = Index<DeserializeGuard<CatalystVM>, ObjectKey>;
/// KubeVirt's launcher pods by the VM they run, from the `kubevirt.io/domain` annotation
/// KubeVirt puts on each (`pkg/virt-controller/services/template.go`), never from their names,
/// which the API server cuts short for a long VM name.
pub type LaunchersByVm = Index<PartialObjectMeta<Pod>, ObjectKey>;

/// KubeVirt's annotation on a launcher pod: the name of the VMI it runs.
pub const DOMAIN_ANNOTATION: &str = "kubevirt.io/domain";

impl LaunchersByVm {
    pub fn launchers() -> Self {
        Self::new(|pod| {
            let vm = pod.annotations().get(DOMAIN_ANNOTATION);
            vm.map(|vm| ObjectKey::beside(pod, vm)).into_iter().collect()
        })
    }
}

impl VmsByJoinSecret {
    pub fn join_secrets() -> Self {
        Self::new(|vm| {
            let valid = vm.0.as_ref().ok().into_iter();
            valid.filter_map(|vm| Some(ObjectKey::beside(vm, vm.spec.node.join_secret_name.as_ref()?))).collect()
        })
    }
}

impl GroupsByVm {
    pub fn groups() -> Self {
        Self::new(|group| {
            let valid = group.0.as_ref().ok().into_iter();
            valid.map(|g| ObjectKey::beside(g, &g.spec.vm)).collect()
        })
    }
}

impl VmsByHost {
    pub fn vms() -> Self {
        Self::new(|vm| {
            let valid = vm.0.as_ref().ok().into_iter();
            valid.map(|vm| vm.status.as_ref().and_then(|s| s.host.clone()).map(HostName::from)).collect()
        })
    }
}

impl HostsByLedger {
    pub fn ledgers() -> Self {
        Self::new(|host| host.0.as_ref().ok().map(|host| super::ledger_of(host).collect()).unwrap_or_default())
    }
}

impl<K: Resource, Key: Eq + Hash + Clone> Index<K, Key> {
    fn new(keys: fn(&K) -> Vec<Key>) -> Self {
        Self { keys, entries: RwLock::default() }
    }

    /// This index, of these objects (a cache's whole content).
    pub fn of<'a>(self, objects: impl IntoIterator<Item = &'a K>) -> Self
    where
        K: 'a,
    {
        self.rebuild(objects);
        self
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries<Key>> {
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An object created or changed.
    pub fn apply(&self, object: &K) {
        let id = ObjectKey::of(object);
        let keys = (self.keys)(object);
        let mut entries = self.write();
        entries.remove(&id);
        for key in &keys {
            entries.by_key.entry(key.clone()).or_default().insert(id.clone());
        }
        if !keys.is_empty() {
            entries.keys_of.insert(id, keys);
        }
    }

    pub fn delete(&self, object: &K) {
        self.write().remove(&ObjectKey::of(object));
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

    /// The keys of the objects under `key`.
    pub fn get(&self, key: &Key) -> Vec<ObjectKey> {
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.by_key.get(key).map(|ids| ids.iter().cloned().collect()).unwrap_or_default()
    }
}

impl<Key: Eq + Hash> Entries<Key> {
    fn remove(&mut self, id: &ObjectKey) {
        for old in self.keys_of.remove(id).unwrap_or_default() {
            if let Some(ids) = self.by_key.get_mut(&old) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_key.remove(&old);
                }
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

    fn names(ids: Vec<ObjectKey>) -> Vec<String> {
        ids.iter().map(|id| id.name().to_string()).collect()
    }

    fn team(vm: &str) -> ObjectKey {
        ObjectKey::namespaced("team", vm)
    }

    #[test]
    fn follows_objects_that_change_key_and_objects_that_go() {
        let index = GroupsByVm::groups().of([&group("a", "vm-1"), &group("b", "vm-1")]);
        assert_eq!(names(index.get(&team("vm-1"))), ["a", "b"]);
        index.apply(&group("b", "vm-2"));
        assert_eq!(names(index.get(&team("vm-1"))), ["a"]);
        assert_eq!(names(index.get(&team("vm-2"))), ["b"]);
        index.delete(&group("a", "vm-1"));
        assert!(index.get(&team("vm-1")).is_empty());
        assert!(index.get(&ObjectKey::namespaced("other", "vm-2")).is_empty());
    }

    fn host(name: &str, ledger: &[&str]) -> DeserializeGuard<CatalystHost> {
        DeserializeGuard(Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "catalyst.io/v1alpha1", "kind": "CatalystHost", "metadata": {"name": name},
            "spec": {"nodeName": name, "capacity": {"cpu": 64, "memory": "256Gi"}},
            "status": {"vms": ledger}
        }))
        .unwrap()))
    }

    /// A host is filed under every VM of its ledger, and leaves the entries its ledger drops.
    #[test]
    fn files_a_host_under_each_vm_of_its_ledger() {
        let index = HostsByLedger::ledgers().of([&host("a", &["team/vm-1", "team/vm-2"]), &host("b", &["team/vm-3"])]);
        assert_eq!(names(index.get(&team("vm-2"))), ["a"]);
        assert_eq!(names(index.get(&team("vm-3"))), ["b"]);
        index.apply(&host("a", &["team/vm-2"]));
        assert!(index.get(&team("vm-1")).is_empty());
        assert_eq!(names(index.get(&team("vm-2"))), ["a"]);
        index.delete(&host("b", &[]));
        assert!(index.get(&team("vm-3")).is_empty());
    }
}
