//! Events, published through kube-runtime's `Recorder`, one recorder per object.
//!
//! kube-runtime 5.0.0's `Recorder::publish` sweeps its whole cache of the events of the last
//! six minutes, under a write lock, at every publish (`src/events.rs`, `publish`, the `retain`
//! over `cache`), so one recorder for the operator made N events cost N² and held them all.
//! A recorder per object keeps each sweep to that object's events; series form as before, since
//! an event's key in the cache names the object it is about.

use super::{PerObject, object_id};
use catalyst_core::key::ObjectKey;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use std::time::{Duration, Instant};

/// How long kube-runtime's recorder remembers an event for a series (`CACHE_TTL`, 6 minutes):
/// a recorder idle that long has nothing left to remember.
const REMEMBERED: Duration = Duration::from_secs(6 * 60);

pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: PerObject<(Recorder, Instant)>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter, recorders: PerObject::default() }
    }

    pub async fn publish(&self, event: &Event, object: &ObjectReference) -> Result<(), kube::Error> {
        let key = ObjectKey::new(object.namespace.clone(), object.name.clone().unwrap_or_default());
        let id = object_id(object.kind.as_deref().unwrap_or_default(), &key);
        let recorder = {
            let mut recorders = self.recorders.lock();
            let (recorder, used) = recorders
                .entry(id)
                .or_insert_with(|| (Recorder::new(self.client.clone(), self.reporter.clone()), Instant::now()));
            *used = Instant::now();
            recorder.clone()
        };
        recorder.publish(event, object).await
    }

    /// Forgets the recorders of objects `exists` no longer finds, and those idle for longer
    /// than a recorder remembers.
    pub fn prune(&self, exists: impl Fn(&str, &ObjectKey) -> bool) {
        self.recorders.lock().retain(|(kind, key), (_, used)| exists(kind, key) && used.elapsed() < REMEMBERED);
    }

    /// How many objects have a recorder.
    pub fn recorders(&self) -> usize {
        self.recorders.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(kind: &str, namespace: Option<&str>, name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some(kind.into()),
            namespace: namespace.map(Into::into),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// One recorder per object, under the (kind, key) the caches use, forgotten with the object.
    #[tokio::test]
    async fn a_recorder_per_object_forgotten_with_it() {
        let nowhere = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let events = Events::new(Client::try_from(nowhere).unwrap(), Reporter::from("test"));
        let event = Event {
            type_: kube::runtime::events::EventType::Normal,
            reason: "Placed".into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        };
        for object in [
            reference("CatalystVM", Some("team"), "a"),
            reference("CatalystHost", None, "h"),
            reference("CatalystVM", Some("team"), "a"),
        ] {
            let _unreachable = events.publish(&event, &object).await;
        }
        assert_eq!(events.recorders(), 2);
        events.prune(|kind, key| (kind, key) == ("CatalystHost", &ObjectKey::cluster_scoped("h")));
        assert_eq!(events.recorders(), 1);
        events.prune(|_, _| false);
        assert_eq!(events.recorders(), 0);
    }
}
