//! The resource model's rules, through its API over a real SQLite store.

use oxflow_core::object::{FieldError, Kind};
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_resources::{
    DeleteOptions, FieldValidation, PatchType, Propagation, Registry, ResourceError, Resources,
    WatchItem, WatchRequest, WriteOptions, builtin,
};
use oxflow_store::{Store, WatchEventType};
use serde_json::{Value, json};

fn validate_widget(v: &mut Value) -> Result<(), Vec<FieldError>> {
    match v.pointer("/spec/size") {
        None => {
            // A default, as a kind's defaulting would set it.
            v["spec"]["size"] = json!(1);
            Ok(())
        }
        Some(s) if s.as_i64().is_some_and(|n| n > 0) => Ok(()),
        Some(_) => Err(vec![FieldError::invalid(
            "spec.size",
            "must be a positive integer",
        )]),
    }
}

static WIDGET: Kind = Kind {
    group: "test.oxflow.io",
    version: "v1",
    kind: "Widget",
    plural: "widgets",
    singular: "widget",
    short_names: &["wd"],
    categories: &[],
    namespaced: true,
    columns: &[],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_widget,
    validate_update: None,
};

async fn resources() -> (tempfile::TempDir, Resources) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let mut kinds = vec![&WIDGET];
    kinds.extend(builtin::kinds());
    (dir, Resources::new(store, Registry::new(kinds)))
}

fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "test.oxflow.io/v1", "kind": "Widget",
           "metadata": {"name": name, "labels": {"app": "x"},
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}\n"}},
           "spec": {"size": size}, "status": {"phase": "Forged"}})
}

fn opts() -> WriteOptions {
    WriteOptions::default()
}

fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn create_replace_and_the_status_subresource() {
    let (_d, r) = resources().await;
    let w = r
        .create(&WIDGET, Some("default"), widget("a", 2), &opts())
        .await
        .unwrap();
    let o = &w.object;
    assert!(w.created);
    assert_eq!(o["metadata"]["namespace"], "default");
    assert_eq!(o["metadata"]["generation"], 1);
    assert!(o["metadata"]["uid"].as_str().is_some());
    assert!(
        o["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        o["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"a\":1}\n",
        "annotations kept verbatim"
    );
    assert!(
        o.get("status").is_none(),
        "status is not written through the object: {o}"
    );

    // A status write changes only the status, and not the generation.
    let s = r
        .replace_status(
            &WIDGET,
            Some("default"),
            "a",
            json!({"status": {"phase": "Ready"}, "spec": {"size": 99}}),
        )
        .await
        .unwrap();
    assert_eq!(s.object["status"]["phase"], "Ready");
    assert_eq!(s.object["spec"]["size"], 2);
    assert_eq!(s.object["metadata"]["generation"], 1);
    assert!(rv(&s.object).parse::<i64>().unwrap() > rv(o).parse::<i64>().unwrap());

    // Replace: labels-only changes keep the generation; spec changes bump it;
    // the status sent along is ignored.
    let mut body = s.object.clone();
    body["metadata"]["labels"]["team"] = json!("a");
    body["status"] = json!({"phase": "Forged"});
    let w = r
        .replace(&WIDGET, Some("default"), "a", body, &opts())
        .await
        .unwrap();
    assert_eq!(w.object["metadata"]["generation"], 1);
    assert_eq!(w.object["status"]["phase"], "Ready");
    let mut body = w.object.clone();
    body["spec"]["size"] = json!(5);
    let w2 = r
        .replace(&WIDGET, Some("default"), "a", body.clone(), &opts())
        .await
        .unwrap();
    assert_eq!(w2.object["metadata"]["generation"], 2);
    // The same body again, with its now stale version: Conflict.
    let e = r
        .replace(&WIDGET, Some("default"), "a", body, &opts())
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::Conflict { .. }), "{e}");
    // An unchanged write makes no new version.
    let same = r
        .replace(&WIDGET, Some("default"), "a", w2.object.clone(), &opts())
        .await
        .unwrap();
    assert_eq!(rv(&same.object), rv(&w2.object));

    let e = r
        .create(&WIDGET, Some("default"), widget("a", 1), &opts())
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::AlreadyExists { .. }), "{e}");
    let e = r.get(&WIDGET, Some("other"), "a").await.unwrap_err();
    assert!(matches!(e, ResourceError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let (_d, r) = resources().await;
    let strict = WriteOptions {
        validation: FieldValidation::Strict,
        ..opts()
    };
    let mut body = widget("b", 1);
    body["spce"] = json!({});
    body["metadata"]["lables"] = json!({});
    let e = r
        .create(&WIDGET, Some("default"), body.clone(), &strict)
        .await
        .unwrap_err();
    let ResourceError::BadRequest { causes, .. } = &e else {
        panic!("{e}")
    };
    let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["spce", "metadata.lables"], "{e}");
    // Without Strict the unknown fields are dropped, with a warning.
    let w = r
        .create(&WIDGET, Some("default"), body, &opts())
        .await
        .unwrap();
    assert_eq!(w.warnings.len(), 2, "{:?}", w.warnings);
    assert!(w.object.get("spce").is_none());

    let e = r
        .create(&WIDGET, Some("default"), widget("c", -1), &opts())
        .await
        .unwrap_err();
    let ResourceError::Invalid { causes, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(causes[0].field, "spec.size");
    let e = r
        .create(&WIDGET, Some("default"), widget("Bad_Name", 1), &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ResourceError::Invalid { causes, .. } if causes[0].field == "metadata.name"),
        "{e}"
    );
    let mut other_ns = widget("d", 1);
    other_ns["metadata"]["namespace"] = json!("team-b");
    let e = r
        .create(&WIDGET, Some("default"), other_ns, &opts())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("does not match the namespace"),
        "{e}"
    );
    let mut wrong = widget("d", 1);
    wrong["apiVersion"] = json!("test.oxflow.io/v2");
    assert!(
        r.create(&WIDGET, Some("default"), wrong, &opts())
            .await
            .is_err()
    );
    // Nothing half-written: none of the refused objects exists.
    let (items, _) = r
        .list(
            &WIDGET,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    // Defaults come from the kind.
    let mut no_size = widget("e", 1);
    no_size["spec"] = json!({});
    let w = r
        .create(&WIDGET, Some("default"), no_size, &opts())
        .await
        .unwrap();
    assert_eq!(w.object["spec"]["size"], 1);
    let mut generated = widget("", 1);
    generated["metadata"]["generateName"] = json!("gen-");
    let w = r
        .create(&WIDGET, Some("default"), generated, &opts())
        .await
        .unwrap();
    assert!(
        w.object["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("gen-")
    );
}

#[tokio::test]
async fn patches() {
    let (_d, r) = resources().await;
    let a = r
        .create(&WIDGET, Some("default"), widget("a", 2), &opts())
        .await
        .unwrap()
        .object;
    let w = r
        .patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::Merge,
            json!({"metadata": {"labels": {"z": "1"}}, "spec": {"size": 3}}),
            false,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        w.object["metadata"]["labels"],
        json!({"app": "x", "z": "1"})
    );
    assert_eq!(w.object["metadata"]["generation"], 2);
    let w = r
        .patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::Json,
            json!([{"op": "replace", "path": "/spec/size", "value": 8}]),
            false,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(w.object["spec"]["size"], 8);
    // A patch pinned to an old version (Katib's edit_experiment_budget sends
    // the whole object back) conflicts.
    let mut pinned = a.clone();
    pinned["spec"]["size"] = json!(4);
    let e = r
        .patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::Merge,
            pinned,
            false,
            &opts(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::Conflict { .. }), "{e}");
    let e = r
        .patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::StrategicMerge,
            json!({"spec": {}}),
            false,
            &opts(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::UnsupportedMediaType(_)), "{e}");
    let e = r
        .patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::Json,
            json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
            false,
            &opts(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/spec/nope"), "{e}");
    // Server-side apply: create, then merge.
    let w = r
        .patch(
            &WIDGET,
            Some("default"),
            "b",
            PatchType::Apply,
            widget("b", 1),
            false,
            &opts(),
        )
        .await
        .unwrap();
    assert!(w.created);
    let w = r
        .patch(
            &WIDGET,
            Some("default"),
            "b",
            PatchType::Apply,
            json!({"spec": {"size": 6}}),
            false,
            &opts(),
        )
        .await
        .unwrap();
    assert!(!w.created);
    assert_eq!(w.object["spec"]["size"], 6);
    // A status patch.
    let w = r
        .patch(
            &WIDGET,
            Some("default"),
            "b",
            PatchType::Merge,
            json!({"status": {"phase": "Ready"}}),
            true,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(w.object["status"]["phase"], "Ready");
    // Strategic merge is a merge for built-in kinds.
    r.create(
        &builtin::CONFIG_MAP,
        Some("default"),
        json!({"metadata": {"name": "cm"}, "data": {"a": "1"}}),
        &opts(),
    )
    .await
    .unwrap();
    let w = r
        .patch(
            &builtin::CONFIG_MAP,
            Some("default"),
            "cm",
            PatchType::StrategicMerge,
            json!({"data": {"b": "2"}}),
            false,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(w.object["data"], json!({"a": "1", "b": "2"}));
}

#[tokio::test]
async fn deletion_with_finalizers_and_owners() {
    let (_d, r) = resources().await;
    let owner = r
        .create(&WIDGET, Some("default"), widget("owner", 1), &opts())
        .await
        .unwrap()
        .object;
    let owner_ref = json!([{"apiVersion": "test.oxflow.io/v1", "kind": "Widget", "name": "owner",
                            "uid": owner["metadata"]["uid"], "controller": true}]);
    for name in ["child-1", "child-2"] {
        let mut c = widget(name, 1);
        c["metadata"]["ownerReferences"] = owner_ref.clone();
        r.create(&WIDGET, Some("default"), c, &opts())
            .await
            .unwrap();
    }
    let mut held = widget("held", 1);
    held["metadata"]["finalizers"] = json!(["test.oxflow.io/cleanup"]);
    held["metadata"]["ownerReferences"] = owner_ref.clone();
    r.create(&WIDGET, Some("default"), held, &opts())
        .await
        .unwrap();

    r.delete(&WIDGET, Some("default"), "owner", &DeleteOptions::default())
        .await
        .unwrap();
    let names = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (items, _) = r
        .list(
            &WIDGET,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        names(items.clone()),
        ["held"],
        "owned objects go with their owner"
    );
    assert!(
        items[0]["metadata"]["deletionTimestamp"].as_str().is_some(),
        "held by its finalizer"
    );
    // Removing the finalizer lets it go.
    r.patch(
        &WIDGET,
        Some("default"),
        "held",
        PatchType::Merge,
        json!({"metadata": {"finalizers": null}}),
        false,
        &opts(),
    )
    .await
    .unwrap();
    assert!(matches!(
        r.get(&WIDGET, Some("default"), "held").await.unwrap_err(),
        ResourceError::NotFound { .. }
    ));

    // Orphan leaves the children, without the reference.
    let owner = r
        .create(&WIDGET, Some("default"), widget("o2", 1), &opts())
        .await
        .unwrap()
        .object;
    let mut c = widget("orphan", 1);
    c["metadata"]["ownerReferences"] = json!([{"apiVersion": "test.oxflow.io/v1", "kind": "Widget",
                                               "name": "o2", "uid": owner["metadata"]["uid"]}]);
    r.create(&WIDGET, Some("default"), c, &opts())
        .await
        .unwrap();
    r.delete(
        &WIDGET,
        Some("default"),
        "o2",
        &DeleteOptions {
            propagation: Propagation::Orphan,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let o = r.get(&WIDGET, Some("default"), "orphan").await.unwrap();
    assert!(o["metadata"].get("ownerReferences").is_none(), "{o}");

    // Foreground: the children go first, then the owner.
    let owner = r
        .create(&WIDGET, Some("default"), widget("o3", 1), &opts())
        .await
        .unwrap()
        .object;
    let mut c = widget("fg-child", 1);
    c["metadata"]["ownerReferences"] = json!([{"apiVersion": "test.oxflow.io/v1", "kind": "Widget",
                                               "name": "o3", "uid": owner["metadata"]["uid"]}]);
    r.create(&WIDGET, Some("default"), c, &opts())
        .await
        .unwrap();
    r.delete(
        &WIDGET,
        Some("default"),
        "o3",
        &DeleteOptions {
            propagation: Propagation::Foreground,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for name in ["o3", "fg-child"] {
        assert!(
            r.get(&WIDGET, Some("default"), name).await.is_err(),
            "{name}"
        );
    }
    let e = r
        .delete(&WIDGET, Some("default"), "o3", &DeleteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::NotFound { .. }));
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<WatchItem>) -> (WatchEventType, String) {
    let item = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a watch event in time")
        .expect("the watch is open");
    match item {
        WatchItem::Event(change) => (
            change.event.event_type,
            change.event.object["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        WatchItem::Expired(m) => panic!("expired: {m}"),
    }
}

#[tokio::test]
async fn watches_start_with_the_objects_and_resume_from_a_version() {
    let (dir, r) = resources().await;
    r.create(&WIDGET, Some("default"), widget("a", 1), &opts())
        .await
        .unwrap();
    let req = |from| WatchRequest {
        kind: &WIDGET,
        namespace: Some("default".into()),
        labels: LabelSelector::default(),
        fields: FieldSelector::default(),
        from,
    };
    let mut w = r.watch(req(None)).await.unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Added, "a".into()));
    let b = r
        .create(&WIDGET, Some("default"), widget("b", 1), &opts())
        .await
        .unwrap()
        .object;
    // Another kind's writes are not sent.
    r.create(
        &builtin::CONFIG_MAP,
        Some("default"),
        json!({"metadata": {"name": "cm"}}),
        &opts(),
    )
    .await
    .unwrap();
    r.patch(
        &WIDGET,
        Some("default"),
        "a",
        PatchType::Merge,
        json!({"spec": {"size": 2}}),
        false,
        &opts(),
    )
    .await
    .unwrap();
    r.delete(&WIDGET, Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Added, "b".into()));
    assert_eq!(next(&mut w).await, (WatchEventType::Modified, "a".into()));
    assert_eq!(next(&mut w).await, (WatchEventType::Deleted, "b".into()));
    drop(w);

    // A watch from b's version, by a new process over the same database
    // (a restart): the changes after it, from the log.
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let mut kinds = vec![&WIDGET];
    kinds.extend(builtin::kinds());
    let again = Resources::new(store, Registry::new(kinds));
    let from: i64 = rv(&b).parse().unwrap();
    let mut w = again.watch(req(Some(from))).await.unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Modified, "a".into()));
    assert_eq!(next(&mut w).await, (WatchEventType::Deleted, "b".into()));
    // A write by the first process (not this one's feed) still arrives.
    r.create(&WIDGET, Some("default"), widget("c", 1), &opts())
        .await
        .unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Added, "c".into()));
    // And the other process's lists (its object cache catches up from the
    // log) see it, and see a delete.
    let all = || async {
        let (items, _) = again
            .list(
                &WIDGET,
                Some("default"),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await
            .unwrap();
        items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all().await, ["a", "c"]);
    r.delete(&WIDGET, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(all().await, ["c"]);

    // Label and field selectors.
    let mut sel = req(None);
    sel.fields = FieldSelector::parse("metadata.name=c", &["metadata.name"]).unwrap();
    let mut w = r.watch(sel).await.unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Added, "c".into()));
    r.create(&WIDGET, Some("default"), widget("d", 1), &opts())
        .await
        .unwrap();
    r.delete(&WIDGET, Some("default"), "c", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Deleted, "c".into()));
}

#[tokio::test]
async fn an_abandoned_watch_lets_go_and_an_old_version_is_expired() {
    let (dir, r) = resources().await;
    let a = r
        .create(&WIDGET, Some("default"), widget("a", 1), &opts())
        .await
        .unwrap()
        .object;
    let req = |from| WatchRequest {
        kind: &WIDGET,
        namespace: None,
        labels: LabelSelector::default(),
        fields: FieldSelector::default(),
        from,
    };
    assert_eq!(r.watchers(), 0);
    let w = r.watch(req(None)).await.unwrap();
    assert_eq!(r.watchers(), 1);
    drop(w);
    // The watch's task notices the closed receiver and drops its
    // subscription (bounded wait, not a sleep for synchronisation).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.watchers() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned watch still holds the feed"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // Compaction: the log no longer holds the first changes.
    for i in 0..3 {
        r.patch(
            &WIDGET,
            Some("default"),
            "a",
            PatchType::Merge,
            json!({"spec": {"size": i + 2}}),
            false,
            &opts(),
        )
        .await
        .unwrap();
    }
    let first: i64 = rv(&a).parse().unwrap();
    let db = dir.path().join("oxflow.db");
    let conn = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c=sqlite3.connect({:?}); c.execute('DELETE FROM resource_events WHERE resource_version <= {}'); c.commit()",
            db.display().to_string(),
            first + 1
        ))
        .status()
        .unwrap();
    assert!(conn.success());
    let mut w = r.watch(req(Some(first))).await.unwrap();
    match w.recv().await.unwrap() {
        WatchItem::Expired(m) => assert!(m.contains("too old resource version"), "{m}"),
        other => panic!("{other:?}"),
    }
    // From a version still in the log, the changes after it.
    let mut w = r.watch(req(Some(first + 1))).await.unwrap();
    assert_eq!(next(&mut w).await, (WatchEventType::Modified, "a".into()));
}

#[tokio::test]
async fn events_are_deduplicated_and_go_with_their_object() {
    let (_dir, r) = resources().await;
    let w = r
        .create(&WIDGET, Some("default"), widget("evented", 2), &opts())
        .await
        .unwrap()
        .object;
    let rec = oxflow_resources::Recorder::new(r.clone(), "widget-controller");
    let events = || async {
        r.list(
            &builtin::EVENT,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await
        .unwrap()
        .0
    };
    rec.record(
        &w,
        oxflow_resources::EventType::Warning,
        "Jammed",
        "gear 3 slipped",
    )
    .await;
    rec.record(
        &w,
        oxflow_resources::EventType::Warning,
        "Jammed",
        "gear 3 slipped",
    )
    .await;
    rec.record(
        &w,
        oxflow_resources::EventType::Normal,
        "Freed",
        "running again",
    )
    .await;
    let got = events().await;
    let mut seen: Vec<(Value, Value)> = got
        .iter()
        .map(|e| (e["reason"].clone(), e["count"].clone()))
        .collect();
    seen.sort_by_key(|(r, _)| r.to_string());
    assert_eq!(
        seen,
        [(json!("Freed"), json!(1)), (json!("Jammed"), json!(2))]
    );
    let jammed = got.iter().find(|e| e["reason"] == "Jammed").unwrap();
    assert_eq!(jammed["involvedObject"]["uid"], w["metadata"]["uid"]);
    assert_eq!(jammed["source"]["component"], "widget-controller");
    assert_eq!(jammed["type"], "Warning");
    // Owned by the widget: deleting it deletes them.
    r.delete(
        &WIDGET,
        Some("default"),
        "evented",
        &DeleteOptions::default(),
    )
    .await
    .unwrap();
    assert!(events().await.is_empty());
}

/// Status writes start from the object cache; a copy another process made
/// stale (it wrote the object meanwhile) costs a read of the store, never
/// that process's change nor a wrong answer.
#[tokio::test]
async fn status_writes_from_a_stale_cache_keep_the_other_process_change() {
    let dir = tempfile::tempdir().unwrap();
    let open = || async {
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        let mut kinds = vec![&WIDGET];
        kinds.extend(builtin::kinds());
        Resources::new(store, Registry::new(kinds))
    };
    let (here, there) = (open().await, open().await);
    let w = here
        .create(&WIDGET, Some("default"), widget("a", 2), &opts())
        .await
        .unwrap()
        .object;
    // `here` caches the kind; `there` (another process) labels the object.
    let (listed, _) = here
        .list(
            &WIDGET,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let mut labelled = there.get(&WIDGET, Some("default"), "a").await.unwrap();
    labelled["metadata"]["labels"]["team"] = json!("b");
    there
        .replace(&WIDGET, Some("default"), "a", labelled, &opts())
        .await
        .unwrap();
    // The cached copy is behind: the write is retried on the stored one.
    let uid = w["metadata"]["uid"].as_str().unwrap();
    assert!(
        here.write_observed_status(
            &WIDGET,
            Some("default"),
            "a",
            (uid, 1),
            &json!({"phase": "Ready"}),
            None,
        )
        .await
        .unwrap()
    );
    let stored = there.get(&WIDGET, Some("default"), "a").await.unwrap();
    assert_eq!(stored["status"]["phase"], "Ready");
    assert_eq!(stored["metadata"]["labels"]["team"], "b");
    // A status PUT carrying the version read before `there`'s write is a
    // conflict, though the cache still holds that version.
    let mut labelled = there.get(&WIDGET, Some("default"), "a").await.unwrap();
    labelled["metadata"]["labels"]["team"] = json!("c");
    there
        .replace(&WIDGET, Some("default"), "a", labelled, &opts())
        .await
        .unwrap();
    let mut behind = here.get(&WIDGET, Some("default"), "a").await.unwrap();
    behind["metadata"]["resourceVersion"] = w["metadata"]["resourceVersion"].clone();
    behind["status"] = json!({"phase": "Old"});
    assert!(matches!(
        here.replace_status(&WIDGET, Some("default"), "a", behind)
            .await,
        Err(ResourceError::Conflict { .. })
    ));
    // With the current version it is written, on top of `there`'s label.
    let current = there.get(&WIDGET, Some("default"), "a").await.unwrap();
    let mut body = current.clone();
    body["status"] = json!({"phase": "New"});
    let written = here
        .replace_status(&WIDGET, Some("default"), "a", body)
        .await
        .unwrap()
        .object;
    assert_eq!(written["status"]["phase"], "New");
    assert_eq!(written["metadata"]["labels"]["team"], "c");
    // The cached copy for reconciles is the object, too.
    let cached = here
        .get_cached(&WIDGET, Some("default"), "a")
        .await
        .unwrap();
    assert_eq!(cached["status"]["phase"], "New");
}

/// Secrets as the API server keeps them: `stringData` folded into base64
/// `data` on every write (a merge patch included), values a workload reads
/// decoded, `immutable` and `type` held, and the secrets of a data
/// directory from before the resource model moved onto it.
#[tokio::test]
async fn secrets_fold_string_data_and_migrate() {
    let (_d, r) = resources().await;
    let ns = oxflow_core::Namespace::new("team-a".to_owned()).unwrap();
    let s = r
        .create(
            &builtin::SECRET,
            Some("team-a"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "stringData": {"user": "admin"}, "data": {"password": "czNjcmV0"}}),
            &opts(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(s["type"], "Opaque");
    assert_eq!(
        s["data"],
        json!({"user": "YWRtaW4=", "password": "czNjcmV0"})
    );
    assert!(s.get("stringData").is_none(), "{s}");
    // A merge patch of stringData changes one value and keeps the others.
    let patched = r
        .patch(
            &builtin::SECRET,
            Some("team-a"),
            "db",
            PatchType::Merge,
            json!({"stringData": {"password": "new"}}),
            false,
            &opts(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(patched["data"]["user"], "YWRtaW4=");
    let values = r.store().get_secret(&ns, "db").await.unwrap().unwrap();
    assert_eq!(values["password"], "new");
    assert_eq!(values["user"], "admin");

    // Bad values are named, and nothing is written.
    let err = r
        .create(
            &builtin::SECRET,
            Some("team-a"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
                   "data": {"k": "%%%"}, "type": "kubernetes.io/tls"}),
            &opts(),
        )
        .await
        .unwrap_err();
    let ResourceError::Invalid { causes, .. } = &err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["data[k]", "data[tls.crt]", "data[tls.key]"]);
    assert!(r.store().get_secret(&ns, "bad").await.unwrap().is_none());

    // Immutable: no value and no type changes.
    r.patch(
        &builtin::SECRET,
        Some("team-a"),
        "db",
        PatchType::Merge,
        json!({"immutable": true}),
        false,
        &opts(),
    )
    .await
    .unwrap();
    for patch in [
        json!({"stringData": {"password": "again"}}),
        json!({"type": "kubernetes.io/basic-auth"}),
    ] {
        let err = r
            .patch(
                &builtin::SECRET,
                Some("team-a"),
                "db",
                PatchType::Merge,
                patch,
                false,
                &opts(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ResourceError::Invalid { .. }), "{err}");
    }
    assert_eq!(
        r.store().get_secret(&ns, "db").await.unwrap().unwrap()["password"],
        "new"
    );

    // The old table's secrets become objects; one written since wins.
    let data = |v: &str| std::collections::BTreeMap::from([("K".to_owned(), v.to_owned())]);
    r.store()
        .put_legacy_secret("team-a", "old", &data("from before"))
        .await
        .unwrap();
    r.store()
        .put_legacy_secret("team-a", "db", &data("stale"))
        .await
        .unwrap();
    assert_eq!(builtin::migrate_legacy_secrets(&r).await.unwrap(), 2);
    assert_eq!(builtin::migrate_legacy_secrets(&r).await.unwrap(), 0);
    assert_eq!(
        r.store().get_secret(&ns, "old").await.unwrap(),
        Some(data("from before"))
    );
    assert_eq!(
        r.store().get_secret(&ns, "db").await.unwrap().unwrap()["password"],
        "new"
    );
    assert_eq!(r.store().legacy_secrets().await.unwrap(), vec![]);
}
