//! How Catalyst names objects in memory: an [`ObjectKey`] for any object, a [`HostName`] for a
//! CatalystHost. The API keeps keys as text, `namespace/name` for a namespaced object and
//! `name` for a cluster-scoped one (a host's ledger, `status.vms`, is a list of them): they are
//! printed with `Display` and read back with `FromStr` where they meet it.

use kube::{Resource, ResourceExt};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// An object's namespace (none for a cluster-scoped one) and name. Boxed `str`s, not `String`s:
/// keys are never grown, and the smaller key keeps the operator's errors small.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ObjectKey {
    namespace: Option<Box<str>>,
    name: Box<str>,
}

impl ObjectKey {
    /// The key of `object`: namespaced when it has a namespace.
    pub fn of<K: Resource>(object: &K) -> Self {
        Self::new(object.namespace(), object.name_any())
    }

    /// The key of an object known by its namespace (none when it is cluster-scoped) and name.
    pub fn new(namespace: Option<String>, name: String) -> Self {
        Self { namespace: namespace.map(String::into_boxed_str), name: name.into_boxed_str() }
    }

    /// The key of the object named `name` in `object`'s namespace (one it refers to by name).
    pub fn beside<K: Resource>(object: &K, name: impl Into<String>) -> Self {
        Self::new(object.namespace(), name.into())
    }

    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::new(Some(namespace.into()), name.into())
    }

    pub fn cluster_scoped(name: impl Into<String>) -> Self {
        Self::new(None, name.into())
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes of its text, `namespace/name` or `name`, without making it.
    fn text_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let namespace = self.namespace.iter().flat_map(|namespace| namespace.bytes().chain([b'/']));
        namespace.chain(self.name.bytes())
    }
}

/// Ordered as its text: ledgers, plans and tables keep the order they had when keys were text
/// (`team-b/x` before `team/x`, which comparing the namespaces first would swap).
impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Keys of one namespace, the common case, order as their names: no walk of the text.
        if self.namespace == other.namespace {
            return self.name.cmp(&other.name);
        }
        self.text_bytes().cmp(other.text_bytes()).then_with(|| self.namespace.cmp(&other.namespace))
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Text that is neither `namespace/name` nor `name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an object key (`namespace/name` or `name`): {why}")]
pub struct KeyError {
    pub text: String,
    why: &'static str,
}

/// Reads what `Display` prints; neither a namespace nor a name has a `/`.
impl FromStr for ObjectKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let refuse = |why| KeyError { text: text.to_string(), why };
        match text.split_once('/') {
            None if !text.is_empty() => Ok(Self::cluster_scoped(text)),
            Some((_, name)) if name.contains('/') => Err(refuse("it has more than one '/'")),
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                Ok(Self::namespaced(namespace, name))
            }
            _ => Err(refuse("its namespace or name is empty")),
        }
    }
}

/// As its text, as the plans print it.
impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A CatalystHost's name: what a VM's status and placements name its host by.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct HostName(String);

impl HostName {
    pub fn of(host: &catalyst_api::CatalystHost) -> Self {
        Self(host.name_any())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for HostName {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl From<&str> for HostName {
    fn from(name: &str) -> Self {
        Self(name.to_string())
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_and_read_back() {
        for (key, text) in [
            (ObjectKey::namespaced("billing", "sms"), "billing/sms"),
            (ObjectKey::cluster_scoped("host-1"), "host-1"),
            (ObjectKey::namespaced("team", "sms.v2"), "team/sms.v2"),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<ObjectKey>(), Ok(key));
        }
        let key: ObjectKey = "billing/sms".parse().unwrap();
        assert_eq!((key.namespace(), key.name()), (Some("billing"), "sms"));
    }

    #[test]
    fn text_with_an_empty_part_or_another_slash_is_refused() {
        for text in ["", "/", "/sms", "billing/", "a/b/c", "billing//sms"] {
            let error = text.parse::<ObjectKey>().unwrap_err();
            assert_eq!(error.text, text);
            assert!(error.to_string().starts_with(&format!("{text:?} is not an object key")), "{error}");
        }
    }

    /// The order is the text's: a namespace that another one begins with sorts after it
    /// when `-` or `.` follows (they come before `/`).
    #[test]
    fn keys_sort_as_their_text() {
        let texts = ["team-b/x", "team/x", "team/x-1", "team.c/a", "host-1", "team"];
        let mut keys: Vec<ObjectKey> = texts.iter().map(|t| t.parse().unwrap()).collect();
        keys.sort();
        let mut sorted = texts.map(String::from);
        sorted.sort();
        assert_eq!(keys.iter().map(ToString::to_string).collect::<Vec<_>>(), sorted);
        // Not one of them, yet of the same text: still told apart, as `Eq` tells them apart.
        let (cluster_scoped, namespaced) = (ObjectKey::cluster_scoped("a/b"), ObjectKey::namespaced("a", "b"));
        assert_ne!(cluster_scoped.cmp(&namespaced), Ordering::Equal);
    }

    #[test]
    fn a_key_serializes_as_its_text() {
        assert_eq!(serde_json::to_value(ObjectKey::namespaced("team", "api")).unwrap(), "team/api");
    }
}
