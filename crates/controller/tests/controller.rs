//! The controller framework over a real store: woken by the change feed,
//! retrying failures, and leading through a lease whose fencing token
//! stops a process that lost it from writing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use oxflow_controller::{
    Action, Context, Controller, ControllerConfig, LeaseConfig, ReconcileError, Reconciler,
};
use oxflow_core::object::{FieldError, Kind};
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_resources::{PatchType, Registry, ResourceError, Resources, WriteOptions};
use oxflow_store::{ResourceKey, Store};
use serde_json::{Value, json};

fn accept(_: &mut Value) -> Result<(), Vec<FieldError>> {
    Ok(())
}

static GADGET: Kind = Kind {
    group: "test.oxflow.io",
    version: "v1",
    kind: "Gadget",
    plural: "gadgets",
    singular: "gadget",
    short_names: &[],
    categories: &[],
    namespaced: true,
    columns: &[],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: accept,
    validate_update: None,
};

/// Marks each gadget observed: `status.observedGeneration` and who wrote it.
struct Observer {
    resources: Resources,
    me: &'static str,
    calls: Mutex<HashMap<String, u32>>,
}

impl Reconciler for Observer {
    fn reconcile<'a>(
        &'a self,
        key: &'a ResourceKey,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Action, ReconcileError>> {
        Box::pin(async move {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(key.name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            // "flaky" fails its first two reconciles.
            if key.name == "flaky" && n <= 2 {
                return Err("not yet".into());
            }
            let obj = match self
                .resources
                .get(&GADGET, Some(&key.namespace), &key.name)
                .await
            {
                Ok(o) => o,
                Err(ResourceError::NotFound { .. }) => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            };
            let status = json!({"status": {"observedGeneration": obj["metadata"]["generation"], "by": self.me}});
            match &ctx.fence {
                Some(f) if f.token > 0 => {
                    self.resources
                        .replace_status_fenced(&GADGET, Some(&key.namespace), &key.name, status, f)
                        .await?;
                }
                _ => {
                    self.resources
                        .replace_status(&GADGET, Some(&key.namespace), &key.name, status)
                        .await?;
                }
            }
            Ok(Action::Done)
        })
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<ResourceKey>, ReconcileError>> {
        Box::pin(async move {
            let (items, _) = self
                .resources
                .list(
                    &GADGET,
                    None,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                )
                .await?;
            Ok(items
                .iter()
                .map(|o| ResourceKey {
                    group: GADGET.group.into(),
                    kind: GADGET.kind.into(),
                    namespace: o["metadata"]["namespace"].as_str().unwrap_or("").into(),
                    name: o["metadata"]["name"].as_str().unwrap_or("").into(),
                })
                .collect())
        })
    }
}

async fn observed(r: &Resources, name: &str, generation: i64, by: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = r.get(&GADGET, Some("default"), name).await.unwrap();
        if o["status"]["observedGeneration"] == json!(generation) && o["status"]["by"] == json!(by)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not observed at {generation} by {by}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gadget(name: &str, size: i64) -> Value {
    json!({"metadata": {"name": name}, "spec": {"size": size}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_reconciled_and_failures_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let r = Resources::new(store.clone(), Registry::new([&GADGET]));
    // An object that exists before the controller starts: found by the
    // first pass over its keys.
    r.create(
        &GADGET,
        Some("default"),
        gadget("early", 1),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let observer = Arc::new(Observer {
        resources: r.clone(),
        me: "solo",
        calls: Mutex::new(HashMap::new()),
    });
    let mut config = ControllerConfig::new("gadgets");
    config.backoff = Duration::from_millis(20);
    config.resync = None;
    let c = Controller::start(store, Some(&r), &[&GADGET], observer.clone(), config);
    observed(&r, "early", 1, "solo").await;
    // Woken by the feed.
    r.create(
        &GADGET,
        Some("default"),
        gadget("a", 1),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    observed(&r, "a", 1, "solo").await;
    // A merge patch (retried on conflict), as the controller writes the
    // status concurrently.
    r.patch(
        &GADGET,
        Some("default"),
        "a",
        PatchType::Merge,
        json!({"spec": {"size": 2}}),
        false,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    observed(&r, "a", 2, "solo").await;
    // Failures come back until it works.
    r.create(
        &GADGET,
        Some("default"),
        gadget("flaky", 1),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    observed(&r, "flaky", 1, "solo").await;
    // Two failures, then success (and perhaps one more pass for its own
    // status write, which changes nothing and so settles).
    let calls = observer.calls.lock().unwrap()["flaky"];
    assert!((3..=4).contains(&calls), "{calls}");
    let key = ResourceKey {
        group: GADGET.group.into(),
        kind: GADGET.kind.into(),
        namespace: "default".into(),
        name: "flaky".into(),
    };
    assert_eq!(c.queue().failures(&key), 0);
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_lost_lease_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let r = Resources::new(store.clone(), Registry::new([&GADGET]));
    let start = |me: &'static str| {
        let observer = Arc::new(Observer {
            resources: r.clone(),
            me,
            calls: Mutex::new(HashMap::new()),
        });
        let mut config = ControllerConfig::new("gadgets");
        config.resync = None;
        config.lease = Some(LeaseConfig {
            holder: me.into(),
            ttl: Duration::from_millis(900),
        });
        Controller::start(store.clone(), Some(&r), &[&GADGET], observer, config)
    };
    let a = start("a");
    let fence_a = a.until_leading().await.unwrap();
    let b = start("b");
    r.create(
        &GADGET,
        Some("default"),
        gadget("x", 1),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    observed(&r, "x", 1, "a").await;
    assert!(b.leading().is_none(), "two leaders");

    // A stops (giving the lease back): B takes over with a new token.
    a.stop();
    let fence_b = b.until_leading().await.unwrap();
    assert!(fence_b.token > fence_a.token, "{fence_a:?} {fence_b:?}");
    // A merge patch (retried on conflict), as the controller writes the
    // status concurrently.
    r.patch(
        &GADGET,
        Some("default"),
        "x",
        PatchType::Merge,
        json!({"spec": {"size": 2}}),
        false,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    observed(&r, "x", 2, "b").await;

    // A write A would still make with its old fence is refused.
    let e = r
        .replace_status_fenced(
            &GADGET,
            Some("default"),
            "x",
            json!({"status": {"by": "a"}}),
            &fence_a,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ResourceError::Fenced { .. }), "{e}");
    let o = r.get(&GADGET, Some("default"), "x").await.unwrap();
    assert_eq!(o["status"]["by"], "b");
    b.stop();
}
