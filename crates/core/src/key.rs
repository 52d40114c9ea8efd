//! How Catalyst names an object in ledgers, plans, events and logs: `namespace/name` for a
//! namespaced object, `name` for a cluster-scoped one. Keys are built and read here only; they
//! stay strings because a host's ledger (`status.vms`) is a list of them in the API.

use kube::{Resource, ResourceExt};

/// `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The object's key: `namespace/name`, or `name` when it is cluster-scoped.
pub fn of<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(namespace) => key(&namespace, &object.name_any()),
        None => object.name_any(),
    }
}

/// (namespace, name) of a namespaced object's key; `None` for a key without a namespace. A
/// namespace has no `/` and a name has none either, so the first splits.
pub fn split(key: &str) -> Option<(&str, &str)> {
    key.split_once('/').filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
}

/// The name part of a key.
pub fn name(key: &str) -> &str {
    split(key).map_or(key, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_built_and_read_back() {
        assert_eq!(key("billing", "sms"), "billing/sms");
        assert_eq!(split("billing/sms"), Some(("billing", "sms")));
        assert_eq!(split("host-1"), None);
        assert_eq!(split("/sms"), None);
        assert_eq!(name("billing/sms"), "sms");
        assert_eq!(name("host-1"), "host-1");
    }
}
