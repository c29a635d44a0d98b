//! The resource table on both backends: versions from one sequence, a
//! stale resourceVersion refused, the change log in commit order, owners
//! found for cascading deletion, and racing writers.

mod common;

use common::{Backend, each_backend};
use oxflow_store::{ResourceKey, StoreError, WatchEventType};
use serde_json::{Value, json};

fn key(ns: &str, name: &str) -> ResourceKey {
    ResourceKey {
        group: "kubeflow.org".into(),
        kind: "Experiment".into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

fn object(name: &str, owner: Option<&str>) -> Value {
    let mut v = json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                       "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
                       "spec": {"maxTrialCount": 3}});
    if let Some(uid) = owner {
        v["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "K", "name": "o", "uid": uid}]);
    }
    v
}

fn rv_of(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn versions_conflicts_and_the_change_log() {
    each_backend(|b: Backend| async move {
        let s = &b.store;
        let start = s.current_resource_version().await.unwrap();
        let (a, ev) = s
            .create_resource(&key("default", "a"), "uid-a", 1, object("a", None), "a")
            .await
            .unwrap();
        assert_eq!(a.resource_version, start + 1, "{}", b.name);
        assert_eq!(rv_of(&a.object), a.resource_version);
        assert_eq!(ev.event_type, WatchEventType::Added);
        let dup = s
            .create_resource(&key("default", "a"), "uid-a2", 1, object("a", None), "a")
            .await
            .unwrap_err();
        assert!(matches!(dup, StoreError::AlreadyExists { .. }), "{dup}");
        // The failed create gave its version back (its transaction rolled back).
        let (c, _) = s
            .create_resource(
                &key("default", "c"),
                "uid-c",
                1,
                object("c", Some("uid-a")),
                "c",
            )
            .await
            .unwrap();
        assert_eq!(c.resource_version, a.resource_version + 1);

        let mut changed = a.object.clone();
        changed["spec"]["maxTrialCount"] = json!(6);
        let (a2, _) = s
            .update_resource(
                &key("default", "a"),
                a.resource_version,
                2,
                changed.clone(),
                "a",
                None,
            )
            .await
            .unwrap();
        assert_eq!(a2.generation, 2);
        assert!(a2.resource_version > c.resource_version);
        // A writer still holding the first version loses.
        let stale = s
            .update_resource(
                &key("default", "a"),
                a.resource_version,
                2,
                changed.clone(),
                "a",
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(stale, StoreError::Stale { .. }), "{stale}");
        let gone = s
            .update_resource(&key("default", "nope"), 1, 1, changed, "nope", None)
            .await
            .unwrap_err();
        assert!(matches!(gone, StoreError::NotFound { .. }), "{gone}");

        let owned = s.resources_owned_by("uid-a").await.unwrap();
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].key.name, "c");

        let (items, list_rv) = s
            .list_resources("kubeflow.org", "Experiment", Some("default"))
            .await
            .unwrap();
        assert_eq!(
            items
                .iter()
                .map(|i| i.key.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(list_rv, a2.resource_version);
        assert!(
            s.list_resources("kubeflow.org", "Experiment", Some("other"))
                .await
                .unwrap()
                .0
                .is_empty()
        );

        assert!(matches!(
            s.delete_resource(&key("default", "c"), Some(1), "c")
                .await
                .unwrap_err(),
            StoreError::Stale { .. }
        ));
        let (deleted, ev) = s
            .delete_resource(&key("default", "c"), None, "c")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.event_type, WatchEventType::Deleted);
        assert_eq!(rv_of(&deleted.object), deleted.resource_version);
        assert!(
            s.delete_resource(&key("default", "c"), None, "c")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.get_resource(&key("default", "c"))
                .await
                .unwrap()
                .is_none()
        );

        // The log holds every write since `start`, in order.
        let log = s.resource_events_after(start, 100).await.unwrap();
        let kinds: Vec<_> = log
            .iter()
            .map(|e| (e.event_type, e.key.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (WatchEventType::Added, "a"),
                (WatchEventType::Added, "c"),
                (WatchEventType::Modified, "a"),
                (WatchEventType::Deleted, "c"),
            ],
            "{}",
            b.name
        );
        assert!(
            log.windows(2)
                .all(|w| w[0].resource_version < w[1].resource_version)
        );
        assert!(s.resource_history_start().await.unwrap() <= start);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_one_wins() {
    each_backend(|b: Backend| async move {
        let s = b.store.clone();
        let (a, _) = s
            .create_resource(
                &key("default", "race"),
                "uid-r",
                1,
                object("race", None),
                "race",
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            let mut obj = a.object.clone();
            obj["spec"]["maxTrialCount"] = json!(i);
            tasks.push(tokio::spawn(async move {
                s.update_resource(
                    &key("default", "race"),
                    a.resource_version,
                    2,
                    obj,
                    "race",
                    None,
                )
                .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::Stale { .. }) => {}
                Err(e) => panic!("{}: {e}", b.name),
            }
        }
        assert_eq!(won, 1, "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn leases_fence_writes_of_a_process_that_lost_them() {
    use oxflow_core::Timestamp;
    each_backend(|b: Backend| async move {
        let s = &b.store;
        let t0 = Timestamp(1_000_000);
        let a = s
            .acquire_lease("ctl", "a", t0, 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.token, 1);
        // Held: another holder waits; the holder renews with the same token.
        assert!(
            s.acquire_lease("ctl", "b", Timestamp(1_000_500), 1000)
                .await
                .unwrap()
                .is_none()
        );
        let renewed = s
            .acquire_lease("ctl", "a", Timestamp(1_000_600), 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renewed.token, 1);
        // Expired: b takes it with the next token.
        let bl = s
            .acquire_lease("ctl", "b", Timestamp(1_001_700), 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bl.token, 2, "{}", b.name);
        assert!(!s.lease_holds(&a, Timestamp(1_001_700)).await.unwrap());

        let (obj, _) = s
            .create_resource(&key("default", "f"), "uid-f", 1, object("f", None), "f")
            .await
            .unwrap();
        // a's write under its stale fence is refused in the same statement;
        // b's goes through (while its lease runs by the wall clock).
        let fresh = s
            .acquire_lease("ctl", "b", Timestamp::now(), 60_000)
            .await
            .unwrap()
            .unwrap();
        let e = s
            .update_resource(
                &key("default", "f"),
                obj.resource_version,
                1,
                obj.object.clone(),
                "f",
                Some(&a),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Fenced { .. }), "{}: {e}", b.name);
        s.update_resource(
            &key("default", "f"),
            obj.resource_version,
            1,
            obj.object.clone(),
            "f",
            Some(&fresh),
        )
        .await
        .unwrap();
        assert!(s.release_lease(&fresh).await.unwrap());
        let c = s
            .acquire_lease("ctl", "c", Timestamp::now(), 1000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.token, 3);

        // A create under a stale fence is refused too, and stores nothing;
        // under the holder's, it is stored.
        let e = s
            .create_resource_fenced(
                &key("default", "g"),
                "uid-g",
                1,
                object("g", None),
                "g",
                Some(&a),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Fenced { .. }), "{}: {e}", b.name);
        assert!(
            s.get_resource(&key("default", "g"))
                .await
                .unwrap()
                .is_none()
        );
        s.create_resource_fenced(
            &key("default", "g"),
            "uid-g",
            1,
            object("g", None),
            "g",
            Some(&c),
        )
        .await
        .unwrap();

        // A holder known to be gone loses the lease before it expires, with
        // the next token; taking it from anyone else does nothing.
        assert_eq!(s.lease_holder("ctl").await.unwrap().as_deref(), Some("c"));
        assert!(
            s.take_lease_from("ctl", "someone-else", "d", Timestamp::now(), 60_000)
                .await
                .unwrap()
                .is_none()
        );
        let d = s
            .take_lease_from("ctl", "c", "d", Timestamp::now(), 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.holder.as_str(), d.token), ("d", 4));
        assert!(!s.lease_holds(&c, Timestamp::now()).await.unwrap());
        assert_eq!(s.lease_holder("nothing").await.unwrap(), None);
    })
    .await;
}
