//! Events, as controllers record them: one `v1` Event per (object, reason,
//! message), its `count` and `lastTimestamp` moving when it happens again
//! (the API server's own deduplication), owned by the object it is about so
//! that deleting the object deletes its events and they stay bounded.
//! `kubectl describe` and `kubectl get events --field-selector
//! involvedObject.name=…` read them.

use oxflow_core::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::builtin::EVENT;
use crate::{ResourceError, Resources, WriteOptions};

/// An event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records events for one controller (its name is the events' source).
#[derive(Clone)]
pub struct Recorder {
    resources: Resources,
    component: &'static str,
}

impl Recorder {
    /// A recorder that signs its events `component`.
    pub fn new(resources: Resources, component: &'static str) -> Self {
        Self {
            resources,
            component,
        }
    }

    /// Records that `reason` happened to `object` (a stored object with
    /// its `apiVersion`, `kind` and `metadata`). Failures are logged, not
    /// returned: an event is never worth failing a reconcile for.
    pub async fn record(&self, object: &Value, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.try_record(object, kind, reason, message).await {
            tracing::warn!(component = self.component, reason, error = %e, "Could not record an event.");
        }
    }

    async fn try_record(
        &self,
        object: &Value,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), ResourceError> {
        let meta = &object["metadata"];
        let name = meta["name"].as_str().unwrap_or_default();
        let namespace = meta["namespace"].as_str().unwrap_or("default");
        let uid = meta["uid"].as_str().unwrap_or_default();
        let digest = Sha256::digest(format!("{uid}\0{reason}\0{message}").as_bytes());
        let event_name = format!("{name}.{}", hex::encode(&digest[..8]));
        let now = Timestamp::now().to_rfc3339();
        for _ in 0..5 {
            match self
                .resources
                .get(&EVENT, Some(namespace), &event_name)
                .await
            {
                Ok(mut existing) => {
                    let count = existing["count"].as_i64().unwrap_or(1) + 1;
                    existing["count"] = json!(count);
                    existing["lastTimestamp"] = json!(now);
                    match self
                        .resources
                        .replace(
                            &EVENT,
                            Some(namespace),
                            &event_name,
                            existing,
                            &WriteOptions::default(),
                        )
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(ResourceError::Conflict { .. } | ResourceError::NotFound { .. }) => {
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(ResourceError::NotFound { .. }) => {
                    let mut owner = json!({
                        "apiVersion": object["apiVersion"],
                        "kind": object["kind"],
                        "name": name,
                        "uid": uid,
                    });
                    if uid.is_empty() {
                        owner = Value::Null;
                    }
                    let mut event = json!({
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {"name": event_name, "namespace": namespace},
                        "involvedObject": {
                            "apiVersion": object["apiVersion"],
                            "kind": object["kind"],
                            "name": name,
                            "namespace": namespace,
                            "uid": uid,
                            "resourceVersion": meta["resourceVersion"],
                        },
                        "reason": reason,
                        "message": message,
                        "type": kind.as_str(),
                        "source": {"component": self.component},
                        "reportingComponent": self.component,
                        "firstTimestamp": now,
                        "lastTimestamp": now,
                        "count": 1,
                    });
                    if !owner.is_null() {
                        event["metadata"]["ownerReferences"] = json!([owner]);
                    }
                    match self
                        .resources
                        .create(&EVENT, Some(namespace), event, &WriteOptions::default())
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(ResourceError::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
