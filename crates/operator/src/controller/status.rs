//! Writing what the operator observed: statuses (a merge patch of what changed, skipped when the
//! same status was last written over the same version), their conditions, and the warnings a
//! user must act on.

use super::context::{digest, key_of};
use super::refusal::Refusal;
use super::{Context, Error, conditions, request};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Merge-patches `status` onto the object's status subresource when it differs from `old`.
/// Returns whether a write was made.
pub async fn patch_status<K, S>(api: &Api<K>, name: &str, old: Option<&S>, status: &S) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    S: Serialize + PartialEq,
{
    if old == Some(status) {
        return Ok(false);
    }
    let old = old.map(|o| serde_json::to_value(o).expect("a status serializes")).unwrap_or(serde_json::Value::Null);
    let new = serde_json::to_value(status).expect("a status serializes");
    let patch = serde_json::json!({ "status": merge_patch(&old, &new) });
    let failed =
        |source| Error::WriteStatus { kind: K::kind(&Default::default()).into_owned(), name: name.to_string(), source };
    let request = request::to(api, "patch_status", |r| {
        r.patch_subresource("status", name, &PatchParams::default(), &Patch::Merge(&patch))
    });
    // The object written is not read back: the watch brings it.
    request::send_unread(&api.clone().into_client(), request.map_err(failed)?).await.map_err(failed)?;
    Ok(true)
}

/// The JSON merge patch that turns `old` into `new`: a field `new` no longer has is sent as
/// null, since a merge patch keeps every field it does not mention (a status field the
/// operator stopped setting, such as the node of a VM whose node went away, would otherwise
/// stay, and the status would never match what the operator wants: a write on every
/// reconcile).
pub fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    match (old.as_object(), new.as_object()) {
        (Some(old), Some(new)) => {
            let mut patch = new.clone();
            for (key, was) in old {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), serde_json::Value::Null);
                    }
                    Some(now) => {
                        patch.insert(key.clone(), merge_patch(was, now));
                    }
                }
            }
            serde_json::Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// A status with standard conditions and an observed generation.
pub trait Reported: Serialize + PartialEq {
    fn conditions(&mut self) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
    fn observed_generation(&mut self) -> &mut Option<i64>;
}

impl Reported for catalyst_api::CatalystVMStatus {
    fn conditions(&mut self) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

impl Reported for catalyst_api::ServiceGroupStatus {
    fn conditions(&mut self) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

/// Writes a namespaced object's `status` (from `old`) with the `wanted` conditions set, then
/// waits `after`. A `problem` (the user must act) is also a Warning event, published when the
/// status changed.
pub async fn report<K, S>(
    object: &K,
    old: Option<&S>,
    mut status: S,
    ctx: &Context,
    wanted: &[conditions::Wanted],
    problem: bool,
    after: Action,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    S: Reported,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let generation = object.meta().generation;
    let merged = conditions::merge(status.conditions(), wanted, generation, &(ctx.clock)());
    *status.conditions() = merged;
    *status.observed_generation() = generation;
    let (kind, key, version) = (K::kind(&()), key_of(object), object.meta().resource_version.clone());
    let digest = digest(&status);
    if ctx.written.already(&kind, &key, version.as_deref(), digest) {
        return Ok(after);
    }
    let written = patch_status(&api, &object.name_any(), old, &status).await?;
    if written {
        ctx.written.record(&kind, &key, version, digest);
    }
    if written
        && problem
        && let Some(failing) = wanted.iter().find(|w| w.status == conditions::Status::False)
    {
        ctx.event(&object.object_ref(&()), EventType::Warning, failing.reason, failing.message.clone()).await;
    }
    Ok(after)
}

/// Reports a problem the user must act on: `Ready=False` for its reason, a Warning event when
/// the status changes, then looks again when the refusal says.
pub async fn refuse<K, S>(
    object: &K,
    old: Option<&S>,
    status: S,
    ctx: &Context,
    refusal: &Refusal,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    S: Reported,
{
    let not_ready = conditions::wanted(conditions::READY, false, refusal.reason(), refusal.message());
    report(object, old, status, ctx, &[not_ready], true, refusal.requeue()).await
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn a_merge_patch_removes_what_the_new_status_no_longer_has() {
        let old =
            json!({"phase": "Ready", "nodeName": "n", "available": {"cpu": 1, "memory": "1Gi"}, "conditions": [1, 2]});
        let new = json!({"phase": "Running", "available": {"cpu": 2, "memory": "1Gi"}, "conditions": [1]});
        assert_eq!(
            merge_patch(&old, &new),
            json!({"phase": "Running", "nodeName": null, "available": {"cpu": 2, "memory": "1Gi"}, "conditions": [1]})
        );
        assert_eq!(merge_patch(&json!(null), &new), new);
    }
}
