//! Kubernetes' own kinds that Oxflow stores like any other: namespaces,
//! config maps, secrets, persistent volume claims, events and pods (the
//! core group, `/api/v1`).

use oxflow_core::object::{Column, FieldError, Kind};
use serde_json::Value;

fn string_map(v: &Value, field: &str, errors: &mut Vec<FieldError>) {
    match v.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                if !val.is_string() {
                    errors.push(FieldError::invalid(
                        format!("{field}.{k}"),
                        "expected a string",
                    ));
                }
            }
        }
        Some(_) => errors.push(FieldError::invalid(field, "expected a map of strings")),
    }
}

fn validate_config_map(v: &mut Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    string_map(v, "data", &mut errors);
    string_map(v, "binaryData", &mut errors);
    if let Some(b) = v.get("immutable")
        && !b.is_boolean()
        && !b.is_null()
    {
        errors.push(FieldError::invalid("immutable", "expected true or false"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn config_map_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    oxflow_core::secret::check_update(old, new, &["data", "binaryData", "immutable"])
}

fn validate_secret(v: &mut Value) -> Result<(), Vec<FieldError>> {
    oxflow_core::secret::admit(v)
}

fn secret_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    oxflow_core::secret::check_update(old, new, &["data", "immutable"])
}

fn validate_namespace(v: &mut Value) -> Result<(), Vec<FieldError>> {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match oxflow_core::Namespace::new(name.to_owned()) {
        Ok(_) => {
            // What the API server reports for an active namespace.
            if v.get("status").is_none_or(Value::is_null) {
                v["status"] = serde_json::json!({"phase": "Active"});
            }
            Ok(())
        }
        Err(e) => Err(vec![FieldError::invalid("metadata.name", e.to_string())]),
    }
}

fn validate_event(v: &mut Value) -> Result<(), Vec<FieldError>> {
    if v.get("involvedObject").is_none_or(|o| !o.is_object()) {
        return Err(vec![FieldError::required("involvedObject")]);
    }
    Ok(())
}

/// `v1` Namespace (cluster-scoped).
pub static NAMESPACE: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    categories: &[],
    namespaced: false,
    columns: &[Column {
        name: "Status",
        type_: "string",
        json_path: ".status.phase",
        priority: 0,
        description: "The phase of the namespace.",
        compute: None,
    }],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: true,
    validate: validate_namespace,
    validate_update: None,
};

/// `v1` ConfigMap.
pub static CONFIG_MAP: Kind = Kind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    categories: &[],
    namespaced: true,
    columns: &[],
    status_subresource: false,
    fields: &["data", "binaryData", "immutable"],
    builtin: true,
    validate: validate_config_map,
    validate_update: Some(config_map_update),
};

/// `v1` Secret: values a workload is given as environment variables or
/// files (a pipeline step's `use_secret_as_env`/`_volume`, a predictor's
/// storage credentials). `data` is base64, `stringData` is folded into it
/// on every write, as the API server does. Stored like any object, in
/// plain text, as an unencrypted etcd keeps them; never logged.
pub static SECRET: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    categories: &[],
    namespaced: true,
    columns: &[
        Column {
            name: "Type",
            type_: "string",
            json_path: ".type",
            priority: 0,
            description: "Opaque, or the well-known type its keys follow.",
            compute: None,
        },
        Column {
            name: "Data",
            type_: "integer",
            json_path: ".data",
            priority: 0,
            description: "How many values it holds.",
            compute: None,
        },
    ],
    status_subresource: false,
    fields: &["data", "stringData", "type", "immutable"],
    builtin: true,
    validate: validate_secret,
    validate_update: Some(secret_update),
};

/// `v1` Event: what controllers record about the objects they manage.
pub static EVENT: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    categories: &[],
    namespaced: true,
    columns: &[
        Column {
            name: "Type",
            type_: "string",
            json_path: ".type",
            priority: 0,
            description: "Normal or Warning.",
            compute: None,
        },
        Column {
            name: "Reason",
            type_: "string",
            json_path: ".reason",
            priority: 0,
            description: "Why.",
            compute: None,
        },
        Column {
            name: "Object",
            type_: "string",
            json_path: ".involvedObject.name",
            priority: 0,
            description: "What it is about.",
            compute: None,
        },
        Column {
            name: "Message",
            type_: "string",
            json_path: ".message",
            priority: 0,
            description: "What happened.",
            compute: None,
        },
    ],
    status_subresource: false,
    fields: &[
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ],
    builtin: true,
    validate: validate_event,
    validate_update: None,
};

/// The access modes a claim may ask for.
const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// The storage class of a claim that names none: Oxflow's one class,
/// a directory on this host.
pub const LOCAL_STORAGE_CLASS: &str = "local";

fn validate_pvc(v: &mut Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(vec![FieldError::required("spec")]);
    };
    match spec.get("accessModes") {
        Some(Value::Array(modes)) if !modes.is_empty() => {
            for (i, m) in modes.iter().enumerate() {
                if !m.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
                    errors.push(FieldError {
                        field: format!("spec.accessModes[{i}]"),
                        message: format!("supported values: {}", ACCESS_MODES.join(", ")),
                        reason: "FieldValueNotSupported",
                    });
                }
            }
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            errors.push(FieldError::required("spec.accessModes"))
        }
        Some(_) => errors.push(FieldError::invalid("spec.accessModes", "expected a list")),
    }
    match spec
        .get("resources")
        .and_then(|r| r.get("requests"))
        .and_then(|r| r.get("storage"))
    {
        None | Some(Value::Null) => {
            errors.push(FieldError::required("spec.resources.requests.storage"))
        }
        Some(q) => {
            let bytes = match q {
                Value::String(s) => oxflow_core::Resources::parse_memory(s),
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            if bytes.is_none_or(|b| b == 0) {
                errors.push(FieldError::invalid(
                    "spec.resources.requests.storage",
                    "expected a positive quantity such as 1Gi or 500Mi",
                ));
            }
        }
    }
    match spec.get("volumeMode").and_then(Value::as_str) {
        None | Some("Filesystem") => {}
        Some(_) => errors.push(FieldError {
            field: "spec.volumeMode".into(),
            message: "Oxflow's volumes are directories: only Filesystem is supported".into(),
            reason: "FieldValueNotSupported",
        }),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    spec.entry("volumeMode")
        .or_insert_with(|| "Filesystem".into());
    if spec.get("storageClassName").is_none_or(Value::is_null) {
        spec.insert("storageClassName".into(), LOCAL_STORAGE_CLASS.into());
    }
    if let Some(Value::Object(status)) = v.get_mut("status") {
        status.entry("phase").or_insert_with(|| "Pending".into());
    } else {
        v["status"] = serde_json::json!({"phase": "Pending"});
    }
    Ok(())
}

/// A claim's spec is fixed once created, as the API server holds it, but
/// for a larger storage request (expansion) and the volume it is bound to.
fn pvc_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    let storage = |v: &Value| {
        v.pointer("/spec/resources/requests/storage")
            .and_then(|q| match q {
                Value::String(s) => oxflow_core::Resources::parse_memory(s),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
            .unwrap_or(0)
    };
    let mut errors = Vec::new();
    if storage(new) < storage(old) {
        errors.push(FieldError::invalid(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
    let rest = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or_default();
        if let Some(m) = spec.as_object_mut() {
            if let Some(Value::Object(r)) = m.get_mut("resources")
                && let Some(Value::Object(req)) = r.get_mut("requests")
            {
                req.remove("storage");
            }
            m.remove("volumeName");
        }
        spec
    };
    let old_volume = old
        .pointer("/spec/volumeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !old_volume.is_empty()
        && new.pointer("/spec/volumeName").and_then(Value::as_str) != Some(old_volume)
    {
        errors.push(FieldError::invalid(
            "spec.volumeName",
            "field is immutable once bound",
        ));
    }
    if rest(old) != rest(new) {
        errors.push(FieldError::invalid(
            "spec",
            "spec is immutable after creation except resources.requests for bound claims",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `v1` PersistentVolumeClaim: a volume a workload mounts (a pipeline
/// step's `mount_pvc`, a notebook's workspace, a predictor's `pvc://`
/// model). Locally each claim is bound to a directory of its own by the
/// volumes controller, which sets `status.phase: Bound`; deleting the
/// claim deletes the directory (reclaim policy Delete).
pub static PERSISTENT_VOLUME_CLAIM: Kind = Kind {
    group: "",
    version: "v1",
    kind: "PersistentVolumeClaim",
    plural: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    short_names: &["pvc"],
    categories: &[],
    namespaced: true,
    columns: &[
        Column {
            name: "Status",
            type_: "string",
            json_path: ".status.phase",
            priority: 0,
            description: "Pending until bound to a volume, then Bound.",
            compute: None,
        },
        Column {
            name: "Volume",
            type_: "string",
            json_path: ".spec.volumeName",
            priority: 0,
            description: "The volume it is bound to.",
            compute: None,
        },
        Column {
            name: "Capacity",
            type_: "string",
            json_path: ".status.capacity.storage",
            priority: 0,
            description: "The bound volume's size.",
            compute: None,
        },
        Column {
            name: "Access Modes",
            type_: "string",
            json_path: ".status.accessModes",
            priority: 0,
            description: "How it may be mounted.",
            compute: None,
        },
        Column {
            name: "StorageClass",
            type_: "string",
            json_path: ".spec.storageClassName",
            priority: 0,
            description: "The class of storage asked for.",
            compute: None,
        },
    ],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: true,
    validate: validate_pvc,
    validate_update: Some(pvc_update),
};

/// `spec.containers`, when given, is a list of objects with a name.
fn validate_pod(v: &mut Value) -> Result<(), Vec<FieldError>> {
    let Some(spec) = v.get("spec").filter(|s| !s.is_null()) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    match spec.get("containers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, c) in list.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push(FieldError::required(format!("spec.containers[{i}].name")));
                }
            }
        }
        Some(_) => errors.push(FieldError::invalid("spec.containers", "expected a list")),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A pod's READY cell: its ready containers of all its containers (`1/1`).
fn ready_containers(pod: &Value) -> Value {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let ready = statuses.map_or(0, |l| {
        l.iter()
            .filter(|c| c["ready"].as_bool() == Some(true))
            .count()
    });
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .filter(|n| *n > 0)
        .or_else(|| statuses.map(Vec::len))
        .unwrap_or(0);
    Value::String(format!("{ready}/{total}"))
}

/// `v1` Pod: how every workload Oxflow runs (a trial's process, …) is
/// shown, with the labels Kubeflow's controllers set, its container's
/// state and its output at `pods/NAME/log`. Oxflow's controllers write
/// them; a pod written by anyone else is stored but runs nothing.
pub static POD: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    categories: &["all"],
    namespaced: true,
    columns: &[
        Column {
            name: "Ready",
            type_: "string",
            json_path: ".status.containerStatuses",
            priority: 0,
            description: "Ready containers of all containers, as kubectl prints them.",
            compute: Some(ready_containers),
        },
        Column {
            name: "Status",
            type_: "string",
            json_path: ".status.phase",
            priority: 0,
            description: "Pending, Running, Succeeded or Failed.",
            compute: None,
        },
        Column {
            name: "Restarts",
            type_: "integer",
            json_path: ".status.containerStatuses[0].restartCount",
            priority: 0,
            description: "How many times its container was started again.",
            compute: None,
        },
    ],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: true,
    validate: validate_pod,
    validate_update: None,
};

/// The core group's kinds.
pub fn kinds() -> [&'static Kind; 6] {
    [
        &NAMESPACE,
        &CONFIG_MAP,
        &SECRET,
        &PERSISTENT_VOLUME_CLAIM,
        &EVENT,
        &POD,
    ]
}

/// Moves the secrets of a data directory from before the resource model
/// (their own table) onto it, as `v1` Secrets of type Opaque. Every start
/// does; once moved, it reads an empty table. A secret that already exists
/// as an object was written since, and wins. Returns how many moved.
pub async fn migrate_legacy_secrets(
    resources: &crate::Resources,
) -> Result<usize, crate::ResourceError> {
    let mut moved = 0;
    for (namespace, name, data) in resources.store().legacy_secrets().await? {
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": oxflow_core::secret::OPAQUE,
            "data": data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(oxflow_core::secret::encode(v.as_bytes()))))
                .collect::<serde_json::Map<_, _>>(),
        });
        match resources
            .create(&SECRET, Some(&namespace), object, &Default::default())
            .await
        {
            Ok(_) | Err(crate::ResourceError::AlreadyExists { .. }) => {
                resources
                    .store()
                    .drop_legacy_secret(&namespace, &name)
                    .await?;
                moved += 1;
            }
            Err(e @ crate::ResourceError::Invalid { .. }) => {
                // A key the old table allowed and Secrets do not: kept
                // where it is (and not given to workloads) rather than lost.
                tracing::warn!(namespace = %namespace, name = %name, error = %e,
                    "A secret stored before the resource model is not a valid Secret; it is kept in its old table and not used.");
            }
            Err(e) => return Err(e),
        }
    }
    if moved > 0 {
        tracing::info!(moved, "Secrets moved onto the resource model.");
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_ready_cell_counts_its_ready_containers() {
        let cells = |pod: Value| {
            oxflow_core::object::printed_cells(&POD, &pod, oxflow_core::Timestamp::now())
        };
        let pod = serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2}, {"name": "b", "ready": false}]},
        });
        let row = cells(pod);
        assert_eq!(
            row[..4],
            [
                json_str("p"),
                json_str("1/2"),
                json_str("Running"),
                2.into()
            ]
        );
        // Not started yet: no statuses.
        let pending = serde_json::json!({"metadata": {"name": "q"},
                                         "spec": {"containers": [{"name": "main"}]}});
        assert_eq!(cells(pending)[1], json_str("0/1"));
        let headers: Vec<&str> = oxflow_core::object::printed_columns(&POD)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(headers, ["Name", "Ready", "Status", "Restarts", "Age"]);
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
