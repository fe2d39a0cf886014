//! Leader election on the in-memory API of `kube-fake-client` (resource
//! versions are checked there as on a real API server).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::Api;
use kube_fake_client::ClientBuilder;
use thesa_operator::leader::{Elector, LeaseSettings, still_leading};
use tokio::sync::watch;

fn settings(identity: &str, lease: u64, deadline: u64, retry_ms: u64) -> LeaseSettings {
    LeaseSettings {
        name: "thesa-operator".into(),
        namespace: "thesa-system".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(lease),
        renew_deadline: Duration::from_secs(deadline),
        retry_period: Duration::from_millis(retry_ms),
    }
}

async fn client() -> Client {
    ClientBuilder::new()
        .with_resource::<Lease>()
        .build()
        .await
        .expect("fake client")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_secs(seconds)
}

#[tokio::test]
async fn one_candidate_leads_and_the_other_waits() {
    let client = client().await;
    let a = Elector::new(client.clone(), settings("a", 15, 10, 2000));
    let b = Elector::new(client.clone(), settings("b", 15, 10, 2000));
    assert!(a.try_acquire_or_renew(at(0)).await.unwrap());
    assert!(!b.try_acquire_or_renew(at(1)).await.unwrap());
    assert!(
        a.try_acquire_or_renew(at(2)).await.unwrap(),
        "the holder renews"
    );
    let lease = Api::<Lease>::namespaced(client, "thesa-system")
        .get("thesa-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.renew_time.unwrap().0, at(2));
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_stops_renewing() {
    let client = client().await;
    let a = Elector::new(client.clone(), settings("a", 15, 10, 2000));
    let b = Elector::new(client.clone(), settings("b", 15, 10, 2000));
    assert!(a.try_acquire_or_renew(at(0)).await.unwrap());
    assert!(
        !b.try_acquire_or_renew(at(14)).await.unwrap(),
        "not expired yet"
    );
    assert!(
        b.try_acquire_or_renew(at(15)).await.unwrap(),
        "expired: taken over"
    );
    assert!(
        !a.try_acquire_or_renew(at(16)).await.unwrap(),
        "the old leader cannot renew"
    );
    let lease = Api::<Lease>::namespaced(client, "thesa-system")
        .get("thesa-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn of_two_candidates_racing_for_a_free_or_expired_lease_one_wins() {
    let client = client().await;
    let a = Elector::new(client.clone(), settings("a", 15, 10, 2000));
    let b = Elector::new(client.clone(), settings("b", 15, 10, 2000));
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(at(0)), b.try_acquire_or_renew(at(0)));
    assert_eq!(
        u8::from(ra.unwrap()) + u8::from(rb.unwrap()),
        1,
        "a free lease"
    );
    let c = Elector::new(client.clone(), settings("c", 15, 10, 2000));
    let d = Elector::new(client.clone(), settings("d", 15, 10, 2000));
    let (rc, rd) = tokio::join!(
        c.try_acquire_or_renew(at(100)),
        d.try_acquire_or_renew(at(100))
    );
    assert_eq!(
        u8::from(rc.unwrap()) + u8::from(rd.unwrap()),
        1,
        "an expired lease"
    );
}

/// A leader cut off from the API (it cannot renew) steps down after the
/// renew deadline, before the lease expires for the standby: second by
/// second, never two leaders.
#[tokio::test]
async fn no_two_leaders_across_a_partition() {
    let client = client().await;
    let lease_duration = Duration::from_secs(15);
    let renew_deadline = Duration::from_secs(10);
    let a = Elector::new(client.clone(), settings("a", 15, 10, 2000));
    let b = Elector::new(client.clone(), settings("b", 15, 10, 2000));
    assert!(a.try_acquire_or_renew(at(0)).await.unwrap());
    let a_last_renewal = Some(at(0));
    // From t = 1 the leader is partitioned: no more renewals.
    let mut b_leads_since = None;
    for t in 1..40 {
        let a_believes = still_leading(a_last_renewal, at(t), renew_deadline);
        let b_holds = b.try_acquire_or_renew(at(t)).await.unwrap();
        assert!(!(a_believes && b_holds), "two leaders at t = {t}");
        if b_holds && b_leads_since.is_none() {
            b_leads_since = Some(t);
        }
    }
    assert_eq!(
        b_leads_since,
        Some(lease_duration.as_secs() as i64),
        "taken over once the lease expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campaign_loop_hands_over_when_the_leader_shuts_down() {
    let client = client().await;
    let (a_leading, mut a_watch) = watch::channel(false);
    let (b_leading, mut b_watch) = watch::channel(false);
    let (stop_a, a_stop) = watch::channel(false);
    let (stop_b, b_stop) = watch::channel(false);
    let a =
        tokio::spawn(Elector::new(client.clone(), settings("a", 2, 1, 100)).run(a_leading, a_stop));
    tokio::time::timeout(Duration::from_secs(5), a_watch.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    let b =
        tokio::spawn(Elector::new(client.clone(), settings("b", 2, 1, 100)).run(b_leading, b_stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !*b_watch.borrow(),
        "the standby waits while the leader renews"
    );
    stop_a.send(true).unwrap();
    a.await.unwrap();
    assert!(!*b_watch.borrow(), "no takeover before the leader releases");
    Elector::new(client.clone(), settings("a", 2, 1, 100))
        .release()
        .await
        .unwrap();
    // The lease was released: the standby leads within a retry period or two.
    tokio::time::timeout(Duration::from_secs(2), b_watch.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    stop_b.send(true).unwrap();
    b.await.unwrap();
}
