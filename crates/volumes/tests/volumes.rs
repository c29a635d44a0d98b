//! Claims bound to directories, by the controller and inline, over a real
//! SQLite store.

use std::time::Duration;

use oxflow_resources::builtin::PERSISTENT_VOLUME_CLAIM as PVC;
use oxflow_resources::{DeleteOptions, Registry, ResourceError, Resources, builtin};
use oxflow_store::Store;
use oxflow_volumes::{Claim, FINALIZER, LocalVolumes, VolumeController, VolumeError};
use serde_json::{Value, json};

async fn setup() -> (tempfile::TempDir, Resources, LocalVolumes) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let resources = Resources::new(store, Registry::new(builtin::kinds()));
    let volumes = LocalVolumes::new(resources.clone(), dir.path().join("volumes"));
    (dir, resources, volumes)
}

fn claim(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

/// Waits (on the change feed, with a deadline) until `pvc` satisfies `done`.
async fn until(resources: &Resources, name: &str, done: impl Fn(Option<&Value>) -> bool) {
    let mut feed = resources.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = match resources.get(&PVC, Some("team-a"), name).await {
            Ok(o) => Some(o),
            Err(ResourceError::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        };
        if done(now.as_ref()) {
            return;
        }
        tokio::time::timeout_at(deadline, feed.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: condition not reached; last {now:?}"))
            .unwrap();
    }
}

#[tokio::test]
async fn the_controller_binds_claims_written_through_the_api_and_reclaims_them() {
    let (home, resources, volumes) = setup().await;
    let controller = VolumeController::start(volumes.clone());
    resources
        .create(&PVC, Some("team-a"), claim("data"), &Default::default())
        .await
        .unwrap();
    until(&resources, "data", |o| {
        o.is_some_and(|o| o["status"]["phase"] == "Bound")
    })
    .await;
    let bound = resources.get(&PVC, Some("team-a"), "data").await.unwrap();
    assert_eq!(bound["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(bound["status"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(bound["spec"]["storageClassName"], "local");
    assert_eq!(bound["metadata"]["finalizers"], json!([FINALIZER]));
    let volume = bound["spec"]["volumeName"].as_str().unwrap();
    assert_eq!(
        volume,
        format!("pvc-{}", bound["metadata"]["uid"].as_str().unwrap())
    );
    let dir = home.path().join("volumes/team-a/data");
    std::fs::write(dir.join("f"), "kept").unwrap();
    // The binding is an event of the claim, recorded once (just after the
    // status that says Bound: awaited on the feed).
    let bound_event =
        |e: &Value| e["involvedObject"]["name"] == "data" && e["reason"] == "ProvisioningSucceeded";
    let mut feed = resources.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let (events, _) = resources
            .list(
                &builtin::EVENT,
                Some("team-a"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .unwrap();
        if events.iter().any(bound_event) {
            break events;
        }
        tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("no ProvisioningSucceeded event")
            .unwrap();
    };
    let bound_events: Vec<&Value> = events.iter().filter(|e| bound_event(e)).collect();
    assert_eq!(bound_events.len(), 1, "{events:?}");
    assert_eq!(bound_events[0]["count"], 1);
    assert!(
        bound_events[0]["message"]
            .as_str()
            .unwrap()
            .contains(volume)
    );

    // Expansion is allowed; shrinking and other spec changes are not.
    let mut bigger = bound.clone();
    bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    resources
        .replace(
            &PVC,
            Some("team-a"),
            "data",
            bigger.clone(),
            &Default::default(),
        )
        .await
        .unwrap();
    until(&resources, "data", |o| {
        o.is_some_and(|o| o["status"]["capacity"]["storage"] == "2Gi")
    })
    .await;
    for (field, value) in [
        ("/spec/resources/requests/storage", json!("1Mi")),
        ("/spec/accessModes", json!(["ReadWriteMany"])),
    ] {
        let mut changed = resources.get(&PVC, Some("team-a"), "data").await.unwrap();
        *changed.pointer_mut(field).unwrap() = value;
        let err = resources
            .replace(&PVC, Some("team-a"), "data", changed, &Default::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ResourceError::Invalid { .. }),
            "{field}: {err}"
        );
    }
    // The path of a bound claim is its directory, with what was written.
    assert_eq!(volumes.path("team-a", "data").await.unwrap(), dir);
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept");

    // Deleting it through the API: the directory goes, then the object.
    resources
        .delete(&PVC, Some("team-a"), "data", &DeleteOptions::default())
        .await
        .unwrap();
    until(&resources, "data", |o| o.is_none()).await;
    assert!(!dir.exists());
    controller.stop();
}

#[tokio::test]
async fn workloads_create_mount_and_delete_claims_inline() {
    let (home, resources, volumes) = setup().await;
    let c = Claim {
        storage: "5Gi".into(),
        access_modes: vec!["ReadWriteMany".into()],
        storage_class: None,
    };
    let dir = volumes
        .create("team-a", "scratch", &c, &json!({"pipeline/runid": "r1"}))
        .await
        .unwrap();
    assert_eq!(dir, home.path().join("volumes/team-a/scratch"));
    assert!(dir.is_dir());
    let o = resources
        .get(&PVC, Some("team-a"), "scratch")
        .await
        .unwrap();
    assert_eq!(o["status"]["phase"], "Bound");
    assert_eq!(o["metadata"]["labels"]["pipeline/runid"], "r1");
    // The name is taken.
    assert!(matches!(
        volumes.create("team-a", "scratch", &c, &json!({})).await,
        Err(VolumeError::Resource(ResourceError::AlreadyExists { .. }))
    ));
    // A missing claim is named; one in another namespace is not this one.
    let err = volumes.path("team-b", "scratch").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("\"scratch\" does not exist in namespace team-b"),
        "{err}"
    );
    // A claim written without a binder is bound when first mounted.
    resources
        .create(&PVC, Some("team-a"), claim("late"), &Default::default())
        .await
        .unwrap();
    assert!(volumes.path("team-a", "late").await.unwrap().is_dir());

    assert!(volumes.delete("team-a", "scratch").await.unwrap());
    assert!(!dir.exists());
    assert!(matches!(
        resources.get(&PVC, Some("team-a"), "scratch").await,
        Err(ResourceError::NotFound { .. })
    ));
    assert!(!volumes.delete("team-a", "scratch").await.unwrap());
}

#[tokio::test]
async fn bad_claims_name_the_field() {
    let (_home, resources, _volumes) = setup().await;
    let mut bad = claim("bad");
    bad["spec"]["accessModes"] = json!(["ReadWriteSometimes"]);
    bad["spec"]["resources"]["requests"]["storage"] = json!("lots");
    bad["spec"]["volumeMode"] = json!("Block");
    let err = resources
        .create(&PVC, Some("team-a"), bad, &Default::default())
        .await
        .unwrap_err();
    let ResourceError::Invalid { causes, .. } = err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.accessModes[0]",
            "spec.resources.requests.storage",
            "spec.volumeMode"
        ]
    );
}
