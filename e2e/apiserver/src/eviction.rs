//! The eviction subresource of pods, as the API server serves it
//! (kubernetes `pkg/registry/core/pod/storage/eviction.go`, v1.32): an eviction deletes its pod
//! unless a PodDisruptionBudget that selects the pod allows no disruption now, which is refused
//! with 429 TooManyRequests (what `kubectl drain` and the operator wait out); a pod that two
//! budgets select is refused (500). A pod that is Pending, Succeeded or Failed is evicted
//! whatever its budgets say (`canIgnorePDB`). The emulator has no disruption controller: a
//! budget's `status.disruptionsAllowed` is whatever a test wrote (none: 0).

use crate::select::Selector;
use crate::store::{ApiError, Store};
use serde_json::{Value, json};

pub fn evict(store: &mut Store, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let pod = store.get("", "pods", Some(namespace), name)?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if !matches!(phase, "Pending" | "Succeeded" | "Failed") {
        let labels = pod["metadata"]["labels"].clone();
        let budgets: Vec<Value> = store
            .list("policy", "poddisruptionbudgets", Some(namespace), &Selector::default(), &[])
            .into_iter()
            .filter(|budget| {
                let selector = &budget["spec"]["selector"];
                !selector.is_null() && Selector::from_object(selector).matches(&labels)
            })
            .collect();
        if budgets.len() > 1 {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(budget) = budgets.first()
            && budget["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1
        {
            let budget_name = budget["metadata"]["name"].as_str().unwrap_or_default();
            return Err(ApiError::new(
                429,
                "TooManyRequests",
                format!(
                    "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {budget_name} needs more healthy pods"
                ),
            ));
        }
    }
    store.delete("", "pods", Some(namespace), name)?;
    Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
}
