//! The leader election against a fake API that can hang or fail, on tokio's paused clock: the
//! durations asserted are exact, and no test waits in real time.

mod support;

use catalyst_operator::lease::{Election, Elector, LeaseError, Lost, Timing};
use serde_json::{Value, json};
use std::time::Duration;
use support::FakeApi;
use tokio::time::Instant;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/catalyst-operator";
const S: fn(u64) -> Duration = Duration::from_secs;

/// The suite's settings: a 4 s lease, renewed every second, given up 3 s after the last renewal.
fn elector(client: kube::Client, identity: &str) -> Elector {
    Elector::new(client, "default", "catalyst-operator", identity, Timing::new(S(4), S(3), S(1)).unwrap())
}

fn lease(holder: &str, renew_time: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "catalyst-operator", "namespace": "default"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 4, "renewTime": renew_time}
    })
}

fn holder(fake: &FakeApi) -> Value {
    fake.get(LEASE).map(|l| l["spec"]["holderIdentity"].clone()).unwrap_or(Value::Null)
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewal_hangs_stops_at_the_renew_deadline() {
    let (fake, client) = FakeApi::start();
    let a = elector(client, "a");
    let acquiring = Instant::now();
    a.acquire().await;
    assert_eq!(holder(&fake), "a");
    fake.hang(true);
    // Bounded, so that a regression fails here instead of hanging the run.
    assert_eq!(tokio::time::timeout(S(60), a.hold()).await, Ok(Lost::Deadline));
    // The renewal sent at 1 s never returns; the lead ends 3 s after the acquiring round began,
    // not when (or if) the request returns.
    assert_eq!(acquiring.elapsed(), S(3));
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_fail_keeps_trying_until_the_deadline_and_a_success_extends_it() {
    let (fake, client) = FakeApi::start();
    let a = elector(client, "a");
    let start = Instant::now();
    a.acquire().await;
    // The renewal at 1 s fails; the API answers again from 1.5 s, so the one at 2 s succeeds.
    fake.fail(Some(500));
    let recover = {
        let fake = fake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            fake.fail(None);
        })
    };
    let holding = a.hold();
    tokio::pin!(holding);
    tokio::select! {
        lost = &mut holding => panic!("lost the lead at {:?}: {lost:?}", start.elapsed()),
        () = tokio::time::sleep(Duration::from_millis(3500)) => {}
    }
    recover.await.unwrap();
    // Still leading past the first deadline (3 s). Failing from 3.5 s on, the lead ends 3 s
    // after the last renewal that succeeded (the one at 3 s).
    fake.fail(Some(500));
    assert_eq!(holding.await, Lost::Deadline);
    assert_eq!(start.elapsed(), S(6));
}

#[tokio::test(start_paused = true)]
async fn a_standby_times_the_lease_from_its_own_observation_not_the_holders_clock() {
    let (fake, client) = FakeApi::start();
    // Held by b, whose clock is an hour behind: by renewTime, the lease expired long ago.
    fake.insert(LEASE, lease("b", "2026-11-29T01:00:00.000000Z"));
    let a = elector(client, "a");
    let start = Instant::now();
    let acquiring = a.acquire();
    tokio::pin!(acquiring);
    let b_renews = async {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(holder(&fake), "b", "taken over before b's lease ran out as a observed it");
        fake.insert(LEASE, lease("b", "2026-11-29T01:00:03.500000Z"));
        tokio::time::sleep(S(4)).await;
        assert_eq!(holder(&fake), "b", "taken over sooner than 4 s after the renewal a observed at 4 s");
    };
    tokio::select! {
        () = &mut acquiring => panic!("took over at {:?}", start.elapsed()),
        () = b_renews => {}
    }
    acquiring.await;
    // b's renewal at 3.5 s was observed by the round at 4 s; four seconds unchanged from there.
    assert_eq!(start.elapsed(), S(8));
    assert_eq!(holder(&fake), "a");
    assert_eq!(fake.get(LEASE).unwrap()["spec"]["leaseTransitions"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_finds_another_holder_stops_without_writing() {
    let (fake, client) = FakeApi::start();
    let a = elector(client, "a");
    a.acquire().await;
    let taken = lease("b", "2026-11-29T02:00:00.000000Z");
    fake.insert(LEASE, taken);
    fake.forget_requests();
    assert_eq!(a.hold().await, Lost::Taken { holder: Some("b".into()) });
    assert_eq!(fake.requests(), vec![format!("GET {LEASE}")]);
    assert_eq!(holder(&fake), "b");
}

#[tokio::test(start_paused = true)]
async fn release_gives_the_lease_up_and_is_bounded_by_the_renew_deadline() {
    let (fake, client) = FakeApi::start();
    let a = elector(client, "a");
    a.acquire().await;
    a.release().await.unwrap();
    assert_eq!(holder(&fake), Value::Null);

    a.acquire().await;
    fake.hang(true);
    let start = Instant::now();
    assert!(matches!(a.release().await, Err(LeaseError::TimedOut { .. })));
    assert_eq!(start.elapsed(), S(3));
}
