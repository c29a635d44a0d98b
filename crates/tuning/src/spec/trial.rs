//! From an assignment to something runnable: Katib's template substitution
//! and the primary container of the trial's Job as a command line.

use oxflow_core::Resources;
use oxflow_suggest::{Assignment, Domain, SearchSpace, Value as PValue};
use serde_json::{Map, Value};

use super::{Experiment, ParameterAssignment, SpecError, TrialReference};

type Result<T> = std::result::Result<T, SpecError>;

/// One trial, ready for a runtime: the primary container of the rendered Job.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRun {
    /// The container's `command` followed by its `args`; never empty.
    pub command: Vec<String>,
    /// The container's `env`, literal values only, in order.
    pub env: Vec<(String, String)>,
    /// The container's `workingDir`.
    pub working_dir: Option<String>,
    /// The container's `image` (recorded; the local runtime runs on the host).
    pub image: Option<String>,
    /// The container's `resources`: `cpu_limit_millis`, `memory_limit_bytes`,
    /// the requests, and an extended resource such as `nvidia.com/gpu` as the
    /// accelerator.
    pub resources: Resources,
    /// The substituted `trialSpec` with `metadata.name` and `namespace` set:
    /// the Job Katib would create.
    pub spec: Value,
}

const CONTAINERS: &str = "spec.template.spec.containers";

/// Finds the primary container; `Err` names the field that is wrong.
fn primary_container<'a>(
    job: &'a Value,
    name: &str,
    spath: &str,
) -> Result<(usize, &'a Map<String, Value>)> {
    let containers = job
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            SpecError::new(
                format!("{spath}.{CONTAINERS}"),
                "missing; a Job's pod template lists its containers there",
            )
        })?;
    let mut names = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if cname == name {
            let obj = c.as_object().ok_or_else(|| {
                SpecError::new(format!("{spath}.{CONTAINERS}[{i}]"), "must be an object")
            })?;
            return Ok((i, obj));
        }
        names.push(cname.to_owned());
    }
    Err(SpecError::new(
        "spec.trialTemplate.primaryContainerName",
        format!(
            "there is no container named {name:?} in trialSpec.{CONTAINERS} (containers: {})",
            names.join(", ")
        ),
    ))
}

fn string_list(v: Option<&Value>, path: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(SpecError::new(format!("{path}[{i}]"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(SpecError::new(path, "must be a list of strings")),
    }
}

fn quantity(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Extracts the runnable parts of the primary container. With `template`
/// set, values that still hold placeholders are not parsed (load-time check).
fn extract(job: &Value, name: &str, template: bool) -> Result<TrialRun> {
    let spath = "spec.trialTemplate.trialSpec";
    let (i, c) = primary_container(job, name, spath)?;
    let cpath = format!("{spath}.{CONTAINERS}[{i}]");
    let mut command = string_list(c.get("command"), &format!("{cpath}.command"))?;
    if command.is_empty() {
        return Err(SpecError::new(
            format!("{cpath}.command"),
            "missing: the trial runs the primary container's command (and args) as a process and cannot read an image's entrypoint; set command",
        ));
    }
    command.extend(string_list(c.get("args"), &format!("{cpath}.args"))?);
    if c.contains_key("envFrom") {
        return Err(SpecError::new(
            format!("{cpath}.envFrom"),
            "is not supported for trials (there are no ConfigMaps or Secrets locally); list the variables under env with literal values",
        ));
    }
    let mut env = Vec::new();
    match c.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (j, e) in items.iter().enumerate() {
                let epath = format!("{cpath}.env[{j}]");
                let ename = e.get("name").and_then(Value::as_str).unwrap_or_default();
                if ename.is_empty() {
                    return Err(SpecError::new(format!("{epath}.name"), "missing"));
                }
                if e.get("valueFrom").is_some() {
                    return Err(SpecError::new(
                        format!("{epath}.valueFrom"),
                        "valueFrom (Secrets, ConfigMaps, field references) is not supported for trials; set a literal value",
                    ));
                }
                let value = match e.get("value") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => {
                        return Err(SpecError::new(format!("{epath}.value"), "must be a string"));
                    }
                };
                env.push((ename.to_owned(), value));
            }
        }
        Some(_) => return Err(SpecError::new(format!("{cpath}.env"), "must be a list")),
    }
    let text = |field: &str| -> Result<Option<String>> {
        match c.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(SpecError::new(
                format!("{cpath}.{field}"),
                "must be a string",
            )),
        }
    };
    let working_dir = text("workingDir")?;
    let image = text("image")?;
    let mut resources = Resources::default();
    for (section, is_limit) in [("limits", true), ("requests", false)] {
        let Some(map) = c.get("resources").and_then(|r| r.get(section)) else {
            continue;
        };
        let Some(map) = map.as_object() else {
            return Err(SpecError::new(
                format!("{cpath}.resources.{section}"),
                "must be a map of resource names to quantities",
            ));
        };
        for (key, v) in map {
            let qpath = format!("{cpath}.resources.{section}.{key}");
            let Some(q) = quantity(v) else {
                return Err(SpecError::new(
                    qpath,
                    "must be a quantity such as \"500m\", \"1\" or \"2Gi\"",
                ));
            };
            if template && q.contains("${") {
                continue;
            }
            let bad =
                || SpecError::new(qpath.clone(), format!("{q:?} is not a Kubernetes quantity"));
            match key.as_str() {
                "cpu" => {
                    let m = Resources::parse_cpu(&q).ok_or_else(bad)?;
                    if is_limit {
                        resources.cpu_limit_millis = Some(m);
                    } else {
                        resources.cpu_request_millis = Some(m);
                    }
                }
                "memory" => {
                    let b = Resources::parse_memory(&q).ok_or_else(bad)?;
                    if is_limit {
                        resources.memory_limit_bytes = Some(b);
                    } else {
                        resources.memory_request_bytes = Some(b);
                    }
                }
                _ if key.contains('/') && is_limit => {
                    let n = q.trim().parse::<u32>().map_err(|_| bad())?;
                    if resources.accelerator.is_none() {
                        resources.accelerator = Some((key.clone(), n));
                    }
                }
                // ephemeral-storage and requests for extended resources do
                // not change how a local process runs.
                _ => {}
            }
        }
    }
    Ok(TrialRun {
        command,
        env,
        working_dir,
        image,
        resources,
        spec: job.clone(),
    })
}

/// Load-time check that the Job template has a runnable primary container.
pub(super) fn check_job(job: &Value, primary: &str) -> Result<()> {
    extract(job, primary, true).map(|_| ())
}

/// Text for a JSON string's inside: the value is placed into the serialised
/// template, where every placeholder sits inside a JSON string.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned()
}

pub(super) fn render(
    e: &Experiment,
    trial_name: &str,
    namespace: &str,
    assignments: &[ParameterAssignment],
) -> Result<TrialRun> {
    let spec = &e.spec;
    let t = &spec.trial_template;
    for (k, a) in assignments.iter().enumerate() {
        if !spec.parameters.iter().any(|p| p.name == a.name) {
            return Err(SpecError::new(
                format!("parameterAssignments[{k}].name"),
                format!("{:?} is not a parameter of experiment {}", a.name, e.name),
            ));
        }
        if assignments[..k].iter().any(|b| b.name == a.name) {
            return Err(SpecError::new(
                format!("parameterAssignments[{k}].name"),
                format!("{:?} is assigned twice", a.name),
            ));
        }
    }
    let value_of = |param: &str| {
        assignments
            .iter()
            .find(|a| a.name == param)
            .map(|a| a.value.clone())
            .ok_or_else(|| {
                SpecError::new(
                    "parameterAssignments",
                    format!("no value for parameter {param:?}"),
                )
            })
    };
    for p in &spec.parameters {
        value_of(&p.name)?;
    }
    let meta = t.trial_spec.get("metadata");
    let meta_str = |field: &str, key: &str| {
        meta.and_then(|m| m.get(field))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let top = |field: &str| {
        t.trial_spec
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut text = serde_json::to_string(&t.trial_spec).map_err(|err| {
        SpecError::new(
            "spec.trialTemplate.trialSpec",
            format!("cannot be serialised: {err}"),
        )
    })?;
    for tp in &t.trial_parameters {
        let value = match &tp.reference {
            TrialReference::Parameter(p) => value_of(p)?,
            TrialReference::Name => trial_name.to_owned(),
            TrialReference::Namespace => namespace.to_owned(),
            TrialReference::Kind => top("kind"),
            TrialReference::ApiVersion => top("apiVersion"),
            TrialReference::Label(k) => meta_str("labels", k),
            TrialReference::Annotation(k) => meta_str("annotations", k),
        };
        let placeholder = format!("${{trialParameters.{}}}", tp.name);
        text = text.replace(&placeholder, &json_escaped(&value));
    }
    let mut job: Value = serde_json::from_str(&text).map_err(|err| {
        SpecError::new(
            "spec.trialTemplate.trialSpec",
            format!("is not valid JSON after substitution: {err}"),
        )
    })?;
    if let Some(obj) = job.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("name".to_owned(), Value::String(trial_name.to_owned()));
            meta.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
        }
    }
    extract(&job, &t.primary_container_name, false)
}

/// Formats an algorithm's assignment as Katib's `parameterAssignments`:
/// doubles in shortest round-trip form (`0.01`, `1.0`, `1e-7`), integers as
/// integers, list choices as the list item verbatim.
///
/// An assignment always comes from the same space, so it fits; a value of
/// the wrong kind (a bug elsewhere) is formatted by its own kind rather than
/// dropped, so that the trial still shows what the algorithm produced.
pub fn format_assignment(space: &SearchSpace, assignment: &Assignment) -> Vec<ParameterAssignment> {
    debug_assert!(space.contains(assignment), "assignment outside its space");
    space
        .params
        .iter()
        .zip(assignment)
        .map(|(p, v)| {
            let value = match (&p.domain, v) {
                (_, PValue::Double(x)) => format!("{x:?}"),
                (_, PValue::Int(i)) => i.to_string(),
                (
                    Domain::Discrete { list, .. } | Domain::Categorical { list },
                    PValue::Choice(c),
                ) => list.get(*c).cloned().unwrap_or_else(|| c.to_string()),
                (_, PValue::Choice(c)) => c.to_string(),
            };
            ParameterAssignment {
                name: p.name.clone(),
                value,
            }
        })
        .collect()
}

/// The reverse of [`format_assignment`], for trials read back from the store:
/// one value per parameter, in any order. Numbers are not range-checked
/// (hyperband overwrites its resource parameter with budgets beyond `max`).
pub fn parse_assignment(
    space: &SearchSpace,
    assignments: &[ParameterAssignment],
) -> std::result::Result<Assignment, SpecError> {
    for (k, a) in assignments.iter().enumerate() {
        if !space.params.iter().any(|p| p.name == a.name) {
            return Err(SpecError::new(
                format!("parameterAssignments[{k}].name"),
                format!("{:?} is not a parameter of the search space", a.name),
            ));
        }
    }
    space
        .params
        .iter()
        .map(|p| {
            let mut found = assignments
                .iter()
                .enumerate()
                .filter(|(_, a)| a.name == p.name);
            let Some((k, a)) = found.next() else {
                return Err(SpecError::new(
                    "parameterAssignments",
                    format!("no value for parameter {:?}", p.name),
                ));
            };
            let path = format!("parameterAssignments[{k}].value");
            if found.next().is_some() {
                return Err(SpecError::new(
                    path,
                    format!("{:?} is assigned twice", p.name),
                ));
            }
            let v = a.value.trim();
            match &p.domain {
                Domain::Double { .. } => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(PValue::Double(x)),
                    _ => Err(SpecError::new(
                        path,
                        format!("{v:?} is not a number ({})", p.name),
                    )),
                },
                Domain::Int { .. } => v.parse::<i64>().map(PValue::Int).map_err(|_| {
                    SpecError::new(path, format!("{v:?} is not an integer ({})", p.name))
                }),
                Domain::Discrete { list, .. } | Domain::Categorical { list } => list
                    .iter()
                    .position(|item| item == &a.value)
                    .map(PValue::Choice)
                    .ok_or_else(|| {
                        SpecError::new(
                            path,
                            format!(
                                "{:?} is not one of the values of {} ({})",
                                a.value,
                                p.name,
                                list.join(", ")
                            ),
                        )
                    }),
            }
        })
        .collect()
}
