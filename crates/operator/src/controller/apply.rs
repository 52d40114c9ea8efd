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
/// status (`S`: what the owner reads of it, or [`Unread`]), from the API server or as last read.
pub async fn apply_known<K, S>(api: &Api<K>, desired: K, known: &Known) -> Result<Option<S>, super::Error>
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
    let live: Live<S> = apply(api, &desired, &kind, &key, known.absent(&kind, &key)).await?;
    let remembered = serde_json::to_value(&live.status).expect("a status serializes");
    known.record(&kind, &key, hash, live.metadata.resource_version, remembered);
    Ok(live.status)
}

/// What the owner reads back of a child it applied: the version, and the status as `S`. The
/// rest of the object the API server returns is skipped, not built.
#[derive(serde::Deserialize)]
struct Live<S> {
    metadata: LiveMeta,
    status: Option<S>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveMeta {
    resource_version: Option<String>,
}

/// The status of a child whose owner does not read it back: skipped when read, and nothing
/// kept.
#[derive(Debug, Serialize)]
pub struct Unread;

impl<'de> serde::Deserialize<'de> for Unread {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Unread)
    }
}

/// Annotation holding the hash of what Catalyst last applied to a child.
pub const APPLIED_HASH: &str = "catalyst.io/applied-hash";

/// FNV-1a's 64-bit offset basis: the hash of nothing.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a from `hash` on through `bytes`: stable across runs and Rust versions, unlike the
/// standard library's hasher.
fn fnv1a_from(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// FNV-1a over what is written to it: an object's JSON hashed as it is serialized, with no
/// buffer to hold it.
struct Fnv1a(u64);

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = fnv1a_from(self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `desired` with the hash of its own content in the applied-hash annotation.
pub fn with_hash<K: Resource + Serialize>(mut desired: K) -> K {
    let mut hasher = Fnv1a(FNV_OFFSET);
    serde_json::to_writer(&mut hasher, &desired).expect("Kubernetes objects serialize");
    let hash = format!("{:016x}", hasher.0);
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
pub fn up_to_date<K: Resource + Serialize>(live: &Value, desired: &K) -> bool {
    let hash = live.pointer(&format!("/metadata/annotations/{}", APPLIED_HASH.replace('/', "~1")));
    hash.and_then(Value::as_str) == desired.annotations().get(APPLIED_HASH).map(String::as_str)
        && contains(live, &serde_json::to_value(desired).expect("serializable"))
}

/// Applies `desired` (already hashed; `kind` and `key` name it in errors) unless the live
/// object is already up to date; what the owner reads of the live object. A child the watch
/// says is `absent` is applied without being read first.
async fn apply<K, S>(
    api: &Api<K>,
    desired: &K,
    kind: &str,
    key: &ObjectKey,
    absent: bool,
) -> Result<Live<S>, super::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    S: DeserializeOwned,
{
    let name = desired.name_any();
    let failed = |source| super::Error::ApplyChild { kind: kind.to_string(), name: key.to_string(), source };
    let live = if absent { None } else { read_cached(api, &name).await.map_err(failed)? };
    if let Some(live) = live {
        let live = serde_json::to_value(&live).expect("Kubernetes objects serialize");
        if up_to_date(&live, desired) {
            return serde_json::from_value(live).map_err(|e| failed(kube::Error::SerdeError(e)));
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let request = super::request::to(api, "patch", |r| r.patch(&name, &params, &Patch::Apply(desired)));
    api.clone().into_client().request(request.map_err(failed)?).await.map_err(failed)
}

/// The child as the API server's watch cache has it (`resourceVersion=0`), not a quorum read
/// of etcd: after a restart every child is read once, 5,000 reads at 1,000 VMs. A stale copy is
/// safe here: one that differs from what is wanted is applied again (server-side apply makes
/// that a no-op where it already holds), and a change it misses is a newer version, which the
/// children's watch reports to the owner, which reads again.
async fn read_cached<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get_with(name, &kube::api::GetParams::any()).await {
        Ok(live) => Ok(Some(live)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error),
    }
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
        let live = |k: &ConfigMap| serde_json::to_value(k).unwrap();
        assert!(up_to_date(&live(&before), &before));
        // `after` is a subset of `before`, but the hashes differ, so it is applied.
        assert!(contains(
            &serde_json::to_value(&before).unwrap(),
            &serde_json::to_value(config_map(&[("a", "1")])).unwrap()
        ));
        assert!(!up_to_date(&live(&before), &after));
        assert_eq!(with_hash(config_map(&[("a", "1")])), after, "the hash is deterministic");
        let whole = serde_json::to_vec(&config_map(&[("a", "1")])).unwrap();
        assert_eq!(
            after.annotations()[APPLIED_HASH],
            format!("{:016x}", fnv1a_from(FNV_OFFSET, &whole)),
            "hashed as it is serialized, it is the hash of the whole JSON, as children already carry it"
        );
    }
}
