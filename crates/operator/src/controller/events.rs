//! Events (`events.k8s.io/v1`), published as client-go's event broadcaster publishes them
//! (`staging/src/k8s.io/client-go/tools/events/event_broadcaster.go`, Kubernetes v1.32): the
//! first event of a kind about an object is created; the same event again (same object, type,
//! reason and action, whatever its note: `getKey`) within six minutes of the last one
//! (`finishTime`) becomes a series, whose count and last time are patched onto the event first
//! created. A series patched on an event that has expired is created anew (`recordEvent`).
//!
//! Not kube-runtime 5.0.0's `Recorder`: it keeps every event it published as a whole `Event`
//! in a map of its own and sweeps that map under a write lock at every publish
//! (`src/events.rs`, `publish`). One recorder for the operator made N events cost N²; one per
//! object cost a map of a whole event per object, 5.6 KiB each, 31% of the operator's peak
//! heap at 3,000 VMs. Here each series is a small entry in one map, found by its key, and the
//! ended ones are dropped when the operator prunes what it remembers.

use super::{object_id, request};
use catalyst_core::key::ObjectKey;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after its last event a series ends (client-go's `finishTime`, 6 minutes).
const SERIES_ENDS: Duration = Duration::from_secs(6 * 60);

/// What makes two events one series (client-go's `eventKey`; the reporter is the same for all).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: (String, ObjectKey),
    type_: EventType,
    reason: String,
    action: String,
}

/// The event a series is counted on.
#[derive(Debug)]
struct Series {
    name: String,
    namespace: String,
    count: i32,
    last: Instant,
}

pub struct Events {
    client: Client,
    reporter: Reporter,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

/// What one publish writes: a new event, or the next count of a series.
enum Write {
    Create,
    Count { name: String, namespace: String, count: i32 },
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter, series: Mutex::default() }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesKey, Series>> {
        self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn publish(&self, event: &Event, object: &ObjectReference) -> Result<(), kube::Error> {
        self.publish_at(event, object, Instant::now()).await
    }

    /// [`Self::publish`] at `now`, for the series' clock.
    async fn publish_at(&self, event: &Event, object: &ObjectReference, now: Instant) -> Result<(), kube::Error> {
        let key = SeriesKey {
            regarding: object_id(
                object.kind.as_deref().unwrap_or_default(),
                &ObjectKey::new(object.namespace.clone(), object.name.clone().unwrap_or_default()),
            ),
            type_: event.type_,
            reason: event.reason.clone(),
            action: event.action.clone(),
        };
        let write = match self.series().get_mut(&key) {
            Some(series) if now.saturating_duration_since(series.last) < SERIES_ENDS => {
                series.count += 1;
                series.last = now;
                Write::Count { name: series.name.clone(), namespace: series.namespace.clone(), count: series.count }
            }
            _ => Write::Create,
        };
        if let Write::Count { name, namespace, count } = write {
            let patch =
                serde_json::json!({"series": {"count": count, "lastObservedTime": MicroTime(Timestamp::now())}});
            let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch =
                request::to(&events, "patch", |r| r.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)));
            match request::send_unread(&self.client, patch?).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                written => return written,
            }
        }
        let created = self.new_event(event, object);
        let (name, namespace) = (created.name_any(), created.namespace().unwrap_or_default());
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let body = serde_json::to_vec(&created).map_err(kube::Error::SerdeError)?;
        let create = request::to(&events, "create", |r| r.create(&PostParams::default(), body));
        request::send_unread(&self.client, create?).await?;
        let series = Series { name, namespace, count: 1, last: now };
        self.series().insert(key, series);
        Ok(())
    }

    /// A new event about `object`, named as client-go names it (`makeEvent`: the object's name
    /// and the time in nanoseconds, in hexadecimal), in the object's namespace (`default` for a
    /// cluster-scoped one).
    fn new_event(&self, event: &Event, object: &ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        let name = object.name.clone().unwrap_or_else(|| self.reporter.controller.clone());
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(object.namespace.clone().unwrap_or_else(|| "default".into())),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            regarding: Some(object.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(match event.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..K8sEvent::default()
        }
    }

    /// Forgets the series of objects `exists` no longer finds, and those that have ended.
    pub fn prune(&self, exists: impl Fn(&str, &ObjectKey) -> bool) {
        let now = Instant::now();
        self.series().retain(|key, series| {
            exists(&key.regarding.0, &key.regarding.1) && now.saturating_duration_since(series.last) < SERIES_ENDS
        });
    }

    /// How many series are remembered.
    pub fn remembered(&self) -> usize {
        self.series().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// Every request as (method, path, body).
    type Requests = Arc<Mutex<Vec<(String, String, Value)>>>;
    /// The events the API holds, by path.
    type Held = Arc<Mutex<HashMap<String, Value>>>;

    /// A client whose API creates events, patches those it holds and answers 404 for the
    /// others.
    fn served() -> (Client, Requests, Held) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let (requests, held) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(HashMap::new())));
        let (seen, stored) = (requests.clone(), held.clone());
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let body: Value = serde_json::from_slice(&body.collect_bytes().await.unwrap()).unwrap();
                let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
                seen.lock().unwrap().push((method.clone(), path.clone(), body.clone()));
                let mut stored = stored.lock().unwrap();
                let (code, answer) = match method.as_str() {
                    "POST" => {
                        stored.insert(format!("{path}/{}", body["metadata"]["name"].as_str().unwrap()), body.clone());
                        (201, body)
                    }
                    _ => match stored.get(&path) {
                        Some(event) => (200, event.clone()),
                        None => (404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})),
                    },
                };
                send.send_response(
                    Response::builder().status(code).body(Body::from(answer.to_string().into_bytes())).unwrap(),
                );
            }
        });
        (Client::new(service, "default"), requests, held)
    }

    fn reference(kind: &str, namespace: Option<&str>, name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some(kind.into()),
            namespace: namespace.map(Into::into),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    /// client-go's series: the same event again is counted on the first, whatever its note;
    /// another reason, another object, or the same event after the series ended is a new event.
    #[tokio::test]
    async fn the_same_event_again_is_a_series_until_it_ends() {
        let (client, requests, _) = served();
        let events = Events::new(client, Reporter { controller: "catalyst".into(), instance: Some("pod-a".into()) });
        let vm = reference("CatalystVM", Some("team"), "a");
        let start = Instant::now();
        events.publish_at(&event("Placed", "on host-1"), &vm, start).await.unwrap();
        events.publish_at(&event("Placed", "on host-2"), &vm, start + Duration::from_secs(60)).await.unwrap();
        events.publish_at(&event("Placed", "on host-2"), &vm, start + Duration::from_secs(120)).await.unwrap();
        events.publish_at(&event("Moved", "to host-2"), &vm, start + Duration::from_secs(120)).await.unwrap();
        let host = reference("CatalystHost", None, "h");
        events.publish_at(&event("Placed", "x"), &host, start).await.unwrap();
        let ended = start + Duration::from_secs(120) + SERIES_ENDS;
        events.publish_at(&event("Placed", "on host-3"), &vm, ended).await.unwrap();
        let requests = requests.lock().unwrap().clone();
        let calls: Vec<String> = requests.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        let first = requests[0].2["metadata"]["name"].as_str().unwrap();
        assert!(first.starts_with("a."), "named after the object: {first}");
        let first_path = format!("/apis/events.k8s.io/v1/namespaces/team/events/{first}");
        assert_eq!(
            calls,
            [
                "POST /apis/events.k8s.io/v1/namespaces/team/events".to_string(),
                format!("PATCH {first_path}"),
                format!("PATCH {first_path}"),
                "POST /apis/events.k8s.io/v1/namespaces/team/events".into(),
                "POST /apis/events.k8s.io/v1/namespaces/default/events".into(),
                "POST /apis/events.k8s.io/v1/namespaces/team/events".into(),
            ]
        );
        let created = &requests[0].2;
        assert_eq!(created["note"], "on host-1");
        assert_eq!(created["reportingController"], "catalyst");
        assert_eq!(created["reportingInstance"], "pod-a");
        assert_eq!(created["regarding"]["name"], "a");
        assert_eq!(requests[1].2["series"]["count"], 2);
        assert_eq!(requests[2].2["series"]["count"], 3);
        assert!(requests[2].2["series"]["lastObservedTime"].is_string());
        assert_eq!(requests[5].2["note"], "on host-3");
    }

    /// A series whose event the API server no longer has (events expire) starts again.
    #[tokio::test]
    async fn a_series_of_an_expired_event_starts_again() {
        let (client, requests, held) = served();
        let events = Events::new(client, Reporter::from("catalyst"));
        let vm = reference("CatalystVM", Some("team"), "a");
        events.publish(&event("Placed", "on host-1"), &vm).await.unwrap();
        held.lock().unwrap().clear();
        events.publish(&event("Placed", "on host-1"), &vm).await.unwrap();
        events.publish(&event("Placed", "on host-1"), &vm).await.unwrap();
        let methods: Vec<String> = requests.lock().unwrap().iter().map(|(m, _, _)| m.clone()).collect();
        assert_eq!(methods, ["POST", "PATCH", "POST", "PATCH"]);
        assert_eq!(requests.lock().unwrap()[3].2["series"]["count"], 2);
    }

    /// A series is forgotten with its object, or once it has ended.
    #[tokio::test]
    async fn series_are_forgotten_with_their_object() {
        let (client, _, _) = served();
        let events = Events::new(client, Reporter::from("catalyst"));
        events.publish(&event("Placed", "x"), &reference("CatalystVM", Some("team"), "a")).await.unwrap();
        events.publish(&event("Placed", "x"), &reference("CatalystHost", None, "h")).await.unwrap();
        let long_ago = Instant::now() - SERIES_ENDS;
        events
            .publish_at(&event("Placed", "x"), &reference("CatalystVM", Some("team"), "old"), long_ago)
            .await
            .unwrap();
        assert_eq!(events.remembered(), 3);
        events.prune(|kind, key| (kind, key) != ("CatalystVM", &ObjectKey::new(Some("team".into()), "a".into())));
        assert_eq!(events.remembered(), 1, "the host's remains; the VM's and the ended one's are gone");
        events.prune(|_, _| false);
        assert_eq!(events.remembered(), 0);
    }
}
