//! Kubernetes' own kinds that Oxflow stores like any other: namespaces,
//! config maps, events and pods (the core group, `/api/v1`).

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
    validate_update: None,
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
        },
        Column {
            name: "Reason",
            type_: "string",
            json_path: ".reason",
            priority: 0,
            description: "Why.",
        },
        Column {
            name: "Object",
            type_: "string",
            json_path: ".involvedObject.name",
            priority: 0,
            description: "What it is about.",
        },
        Column {
            name: "Message",
            type_: "string",
            json_path: ".message",
            priority: 0,
            description: "What happened.",
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
            name: "Status",
            type_: "string",
            json_path: ".status.phase",
            priority: 0,
            description: "Pending, Running, Succeeded or Failed.",
        },
        Column {
            name: "Restarts",
            type_: "integer",
            json_path: ".status.containerStatuses[0].restartCount",
            priority: 0,
            description: "How many times its container was started again.",
        },
    ],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: true,
    validate: validate_pod,
    validate_update: None,
};

/// The core group's kinds.
pub fn kinds() -> [&'static Kind; 4] {
    [&NAMESPACE, &CONFIG_MAP, &EVENT, &POD]
}
