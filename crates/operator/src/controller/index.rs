//! The ServiceGroups of each CatalystVM, kept by the groups' watch beside their cache, so a
//! reconcile finds a VM's groups without scanning every group (it did, three times per
//! reconcile, which made convergence grow with the square of the layout).

use catalyst_api::ServiceGroup;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

/// (namespace, VM name) -> the names of the groups that name that VM; and each group's VM.
#[derive(Default)]
pub struct GroupsByVm {
    by_vm: RwLock<Indexed>,
}

#[derive(Default)]
struct Indexed {
    groups: HashMap<(String, String), BTreeSet<String>>,
    vm_of: HashMap<(String, String), String>,
}

impl GroupsByVm {
    /// An index of these groups (a cache's whole content).
    pub fn of<'a>(groups: impl IntoIterator<Item = &'a DeserializeGuard<ServiceGroup>>) -> Self {
        let index = Self::default();
        index.rebuild(groups);
        index
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indexed> {
        self.by_vm.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A group created or changed: it now names `spec.vm` (a malformed one names nothing).
    pub fn apply(&self, group: &DeserializeGuard<ServiceGroup>) {
        let mut indexed = self.write();
        let key = (group.namespace().unwrap_or_default(), group.name_any());
        if let Some(old) = indexed.vm_of.remove(&key)
            && let Some(names) = indexed.groups.get_mut(&(key.0.clone(), old.clone()))
        {
            names.remove(&key.1);
            if names.is_empty() {
                indexed.groups.remove(&(key.0.clone(), old));
            }
        }
        if let Ok(valid) = &group.0 {
            indexed.groups.entry((key.0.clone(), valid.spec.vm.clone())).or_default().insert(key.1.clone());
            indexed.vm_of.insert(key, valid.spec.vm.clone());
        }
    }

    pub fn delete(&self, group: &DeserializeGuard<ServiceGroup>) {
        let mut indexed = self.write();
        let key = (group.namespace().unwrap_or_default(), group.name_any());
        if let Some(vm) = indexed.vm_of.remove(&key)
            && let Some(names) = indexed.groups.get_mut(&(key.0.clone(), vm.clone()))
        {
            names.remove(&key.1);
            if names.is_empty() {
                indexed.groups.remove(&(key.0, vm));
            }
        }
    }

    /// After a (re)list: the index of exactly these groups.
    pub fn rebuild<'a>(&self, groups: impl IntoIterator<Item = &'a DeserializeGuard<ServiceGroup>>) {
        *self.write() = Indexed::default();
        for group in groups {
            self.apply(group);
        }
    }

    /// The names of the groups in `namespace` that name the VM `vm`.
    pub fn groups_of(&self, namespace: &str, vm: &str) -> Vec<String> {
        let indexed = self.by_vm.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        indexed
            .groups
            .get(&(namespace.to_string(), vm.to_string()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
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

    #[test]
    fn follows_groups_that_move_to_another_vm_and_groups_that_go() {
        let index = GroupsByVm::of([&group("a", "vm-1"), &group("b", "vm-1")]);
        assert_eq!(index.groups_of("team", "vm-1"), ["a", "b"]);
        index.apply(&group("b", "vm-2"));
        assert_eq!(index.groups_of("team", "vm-1"), ["a"]);
        assert_eq!(index.groups_of("team", "vm-2"), ["b"]);
        index.delete(&group("a", "vm-1"));
        assert!(index.groups_of("team", "vm-1").is_empty());
        assert!(index.groups_of("other", "vm-2").is_empty());
    }
}
