//! Writing children with server-side apply under one field manager, but only when needed: an
//! unchanged world must cost no write. A child is re-applied when it is missing, when what
//! Catalyst last applied differs from what it wants now (a hash in an annotation notices fields
//! Catalyst stopped setting, which a subset check cannot), or when someone changed a field
//! Catalyst owns.

use super::{PerObject, key_of, object_id};
use catalyst_core::key::ObjectKey;
use catalyst_core::quantity::parse_bytes;
use catalyst_core::render::FIELD_MANAGER;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// The children whose live version this operator knows to hold what it last applied: (kind,
/// key) -> the applied hash, the resourceVersion it read or wrote, and the status
/// it read there (for the kinds whose status the reconciler reads back). The children's watch
/// forgets an entry as soon as it sees another version (an edit by hand, a deletion, a status
/// written by KubeVirt or the StatefulSet controller), so a child known current is neither
/// read nor written again.
#[derive(Default)]
pub struct Known {
    current: PerObject<KnownVersion>,
    /// The children the watches have seen exist, by (kind, key).
    seen: PerObject<()>,
    /// The kinds whose watch has listed them all once: a child of such a kind that is not in
    /// `seen` does not exist (or was made so recently that the watch lags; an apply is then
    /// what it needs anyway), so it is applied without being read first.
    listed: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

struct KnownVersion {
    hash: String,
    version: String,
    status: Value,
}

impl Known {
    /// The status read with the child, when the child is known to hold `hash`.
    fn holding(&self, kind: &str, key: &ObjectKey, hash: &str) -> Option<Value> {
        self.current.lock().get(&object_id(kind, key)).filter(|k| k.hash == hash).map(|k| k.status.clone())
    }

    fn record(&self, kind: &str, key: &ObjectKey, hash: String, version: Option<String>, status: Value) {
        let mut current = self.current.lock();
        match version {
            Some(version) => current.insert(object_id(kind, key), KnownVersion { hash, version, status }),
            None => current.remove(&object_id(kind, key)),
        };
    }

    /// The children's watch saw `version` of the child, or its deletion (`None`): anything
    /// but the version recorded makes the child unknown again.
    pub fn observed(&self, kind: &str, key: &ObjectKey, version: Option<&str>) {
        let id = object_id(kind, key);
        {
            let mut current = self.current.lock();
            if current.get(&id).is_some_and(|known| Some(known.version.as_str()) != version) {
                current.remove(&id);
            }
        }
        match version {
            Some(_) => self.seen.lock().insert(id, ()),
            None => self.seen.lock().remove(&id),
        };
    }

    /// Whether `version` of the child is the one this operator last wrote and recorded: its
    /// watch event is the echo of that write, which tells the owner nothing it does not know.
    fn wrote(&self, kind: &str, key: &ObjectKey, version: Option<&str>) -> bool {
        let current = self.current.lock();
        version.is_some_and(|version| current.get(&object_id(kind, key)).is_some_and(|k| k.version == version))
    }

    /// Whether this version of a `kind` child, as its watch delivers it, is an echo ([`Self::wrote`]).
    pub fn echoes<K: Resource>(&self, kind: &str, child: &K) -> bool {
        self.wrote(kind, &key_of(child), child.meta().resource_version.as_deref())
    }

    /// The watch of `kind` has listed every child of that kind (`keys`, when it says exactly
    /// which; otherwise what it reported one by one stands).
    pub fn listed(&self, kind: &str, keys: Option<Vec<ObjectKey>>) {
        if let Some(keys) = keys {
            let mut seen = self.seen.lock();
            seen.retain(|(k, _), _| k != kind);
            seen.extend(keys.into_iter().map(|key| (object_id(kind, &key), ())));
        }
        self.listed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(kind.to_string());
    }

    /// Whether the watch of `kind` says the child `key` does not exist.
    pub fn absent(&self, kind: &str, key: &ObjectKey) -> bool {
        let listed = self.listed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(kind);
        listed && !self.seen.lock().contains_key(&object_id(kind, key))
    }
}

/// [`Known`] kept current by the watch of one kind of child: every version it sees, or
/// deletion, is reported.
pub struct Follows {
    pub known: std::sync::Arc<Known>,
    pub kind: String,
}

impl<K: Resource + Send + Sync> super::index::Follower<K> for Follows {
    fn applied(&self, object: &K) {
        self.known.observed(&self.kind, &key_of(object), object.meta().resource_version.as_deref());
    }

    fn deleted(&self, object: &K) {
        self.known.observed(&self.kind, &key_of(object), None);
    }

    fn relisted(&self, objects: &[std::sync::Arc<K>]) {
        objects.iter().for_each(|object| self.applied(object.as_ref()));
        let keys = objects.iter().map(|object| key_of(object.as_ref())).collect();
        self.known.listed(&self.kind, Some(keys));
    }
}

/// Applies `desired` unless this child is known to hold it already (see [`Known`]); the child's
/// status (as `status` reads it), from the API server or as last read.
pub async fn apply_known<K, S>(
    api: &Api<K>,
    desired: K,
    known: &Known,
    status: impl Fn(&K) -> Option<S>,
) -> Result<Option<S>, super::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
    S: Serialize + DeserializeOwned,
{
    let kind = K::kind(&Default::default()).into_owned();
    let desired = with_hash(desired);
    let key = key_of(&desired);
    let hash = desired.annotations().get(APPLIED_HASH).cloned().unwrap_or_default();
    if let Some(remembered) = known.holding(&kind, &key, &hash)
        && let Ok(remembered) = serde_json::from_value(remembered)
    {
        return Ok(remembered);
    }
    let live = apply(api, &desired, &kind, &key, known.absent(&kind, &key)).await?;
    let read = status(&live);
    let remembered = serde_json::to_value(&read).expect("a status serializes");
    known.record(&kind, &key, hash, live.meta().resource_version.clone(), remembered);
    Ok(read)
}

/// Annotation holding the hash of what Catalyst last applied to a child.
pub const APPLIED_HASH: &str = "catalyst.io/applied-hash";

/// FNV-1a: stable across runs and Rust versions, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// `desired` with the hash of its own content in the applied-hash annotation.
pub fn with_hash<K: Resource + Serialize>(mut desired: K) -> K {
    let json = serde_json::to_vec(&desired).expect("Kubernetes objects serialize");
    let hash = format!("{:016x}", fnv1a(&json));
    desired.annotations_mut().insert(APPLIED_HASH.into(), hash);
    desired
}

/// Every field of `desired` is in `live` with the same value (lists element by element).
/// Quantities of memory and storage compare by their bytes: the API server stores `1.5Gi` as
/// `1536Mi`.
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_at(live, desired, "")
}

/// Keys whose string values are memory or storage quantities in what Catalyst renders.
const QUANTITY_KEYS: [&str; 4] = ["memory", "storage", "guest", "ephemeral-storage"];

fn contains_at(live: &Value, desired: &Value, key: &str) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| live.get(key).is_some_and(|l| contains_at(l, value, key)))
        }
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains_at(l, d, key))
        }
        (Value::String(live), Value::String(desired)) if QUANTITY_KEYS.contains(&key) => {
            match (parse_bytes(live), parse_bytes(desired)) {
                (Ok(live), Ok(desired)) => live == desired,
                _ => live == desired,
            }
        }
        _ => live == desired,
    }
}

/// Whether `live` is what applying `desired` (already hashed) would leave.
pub fn up_to_date<K: Resource + Serialize>(live: &K, desired: &K) -> bool {
    let hash = |k: &K| k.annotations().get(APPLIED_HASH).cloned();
    hash(live) == hash(desired)
        && contains(
            &serde_json::to_value(live).expect("serializable"),
            &serde_json::to_value(desired).expect("serializable"),
        )
}

/// Applies `desired` (already hashed; `kind` and `key` name it in errors) unless the live
/// object is already up to date; the live object. A child the watch says is `absent` is applied
/// without being read first.
async fn apply<K>(api: &Api<K>, desired: &K, kind: &str, key: &ObjectKey, absent: bool) -> Result<K, super::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.name_any();
    let failed = |source| super::Error::ApplyChild { kind: kind.to_string(), name: key.to_string(), source };
    let live = if absent { None } else { api.get_opt(&name).await.map_err(failed)? };
    if let Some(live) = live
        && up_to_date(&live, desired)
    {
        return Ok(live);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(desired)).await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    /// Only the version this operator wrote is an echo: not another writer's, and not the
    /// deletion of what it wrote (the watch forgets the version first).
    #[test]
    fn only_the_version_written_is_an_echo() {
        let known = Known::default();
        let key = ObjectKey::namespaced("team", "vm-a");
        known.record("VirtualMachine", &key, "hash".into(), Some("7".into()), Value::Null);
        known.observed("VirtualMachine", &key, Some("7"));
        assert!(known.wrote("VirtualMachine", &key, Some("7")));
        assert!(!known.wrote("VirtualMachine", &key, Some("8")));
        assert!(!known.wrote("Secret", &key, Some("7")));
        known.observed("VirtualMachine", &key, Some("8"));
        assert!(!known.wrote("VirtualMachine", &key, Some("7")), "an edit by hand forgets the write");
        known.record("VirtualMachine", &key, "hash".into(), Some("9".into()), Value::Null);
        known.observed("VirtualMachine", &key, None);
        assert!(!known.wrote("VirtualMachine", &key, Some("9")), "a deletion is never an echo");
    }

    #[test]
    fn a_subset_check_ignores_what_the_server_adds() {
        let live =
            json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10, "ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(contains(&live, &json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}})));
        assert!(!contains(&live, &json!({"spec": {"replicas": 4}})));
        assert!(!contains(&live, &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})));
        assert!(!contains(&live, &json!({"spec": {"paused": true}})));
    }

    #[test]
    fn memory_and_storage_compare_as_quantities_and_nothing_else_does() {
        let live = json!({"resources": {"requests": {"memory": "1536Mi", "storage": "1Ti"}}, "guest": "1536Mi", "image": "app:1.0"});
        assert!(contains(
            &live,
            &json!({"resources": {"requests": {"memory": "1.5Gi", "storage": "1024Gi"}}, "guest": "1.5Gi"})
        ));
        assert!(!contains(&live, &json!({"resources": {"requests": {"memory": "1.5G"}}})));
        assert!(!contains(&live, &json!({"image": "app:1"})));
        assert!(
            !contains(&json!({"version": "1.0"}), &json!({"version": "1"})),
            "only quantity keys compare as quantities"
        );
    }

    fn config_map(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta { name: Some("c".into()), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn the_hash_notices_a_field_catalyst_stopped_setting() {
        let before = with_hash(config_map(&[("a", "1"), ("b", "2")]));
        let after = with_hash(config_map(&[("a", "1")]));
        assert!(up_to_date(&before, &before));
        // `after` is a subset of `before`, but the hashes differ, so it is applied.
        assert!(contains(
            &serde_json::to_value(&before).unwrap(),
            &serde_json::to_value(config_map(&[("a", "1")])).unwrap()
        ));
        assert!(!up_to_date(&before, &after));
        assert_eq!(with_hash(config_map(&[("a", "1")])), after, "the hash is deterministic");
    }
}
