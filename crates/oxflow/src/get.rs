//! `oxflow get`, `oxflow describe` and `oxflow delete`: any kind of the
//! registry, named as kubectl names them (plural, singular, short name or
//! kind, optionally `.group`), printed with the kind's own printer columns.
//! A kind added to the registry needs nothing here.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use oxflow_core::object::{Kind, printed_cells, printed_columns};
use oxflow_core::{Namespace, Timestamp};
use serde_json::Value;

use crate::cli::Cli;
use crate::objects::Backend;

/// Arguments of `oxflow get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to list: a plural, singular, short name or kind, as kubectl
    /// takes them (`isvc`, `trainedmodels`, `cm`, `namespaces`); several
    /// separated by commas.
    pub resource: String,
    /// One object's name (every object when left out).
    pub name: Option<String>,
    /// Every namespace, not only --namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only objects whose labels match (`app=demo,tier!=web`, `env in (a,b)`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_parser = ["table", "wide", "json", "yaml", "name"], default_value = "table")]
    pub output: String,
}

/// Arguments of `oxflow describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// The kind (as for `oxflow get`).
    pub resource: String,
    /// The object's name.
    pub name: String,
}

/// Arguments of `oxflow delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The kind (as for `oxflow get`).
    pub resource: String,
    /// The objects' names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// The kinds `name` stands for; an error that lists what there is when
/// none.
fn resolve(name: &str) -> Result<Vec<&'static Kind>> {
    let registry = oxflow_server::registry();
    let mut out = Vec::new();
    for part in name.split(',').filter(|p| !p.is_empty()) {
        let kinds = registry.resolve(part);
        match kinds.as_slice() {
            [] => {
                let known: Vec<String> = registry
                    .kinds()
                    .iter()
                    .map(|k| match k.short_names.first() {
                        Some(s) => format!("{} ({s})", k.plural),
                        None => k.plural.to_owned(),
                    })
                    .collect();
                bail!(
                    "the server doesn't have a resource type {part:?}; the kinds are: {}",
                    known.join(", ")
                )
            }
            [k] => out.push(*k),
            several => bail!(
                "{part:?} names several kinds ({}); add the group, as in {}.{}",
                several
                    .iter()
                    .map(|k| k.resource_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                several[0].plural,
                several[0].group
            ),
        }
    }
    if out.is_empty() {
        bail!("name a kind, as in `oxflow get isvc`");
    }
    Ok(out)
}

/// `oxflow get`.
pub async fn get(cli: &Cli, args: &GetArgs) -> Result<ExitCode> {
    let kinds = resolve(&args.resource)?;
    if args.name.is_some() && kinds.len() > 1 {
        bail!("a name goes with one kind, not {}", args.resource);
    }
    let selector = match args.selector.as_deref() {
        Some(s) => Some(
            oxflow_core::selector::LabelSelector::parse(s)
                .map_err(|e| anyhow::anyhow!("--selector: {e}"))?,
        ),
        None => None,
    };
    let backend = Backend::open(cli).await?;
    let ns = Namespace::new(cli.namespace.clone())?;
    let mut shown = Vec::new();
    for kind in &kinds {
        let objects = match &args.name {
            Some(name) => vec![backend.get(kind, &ns, name).await?],
            None => {
                let scope = (!args.all_namespaces).then_some(&ns);
                backend
                    .list(kind, scope)
                    .await?
                    .into_iter()
                    .filter(|o| {
                        selector
                            .as_ref()
                            .is_none_or(|s| oxflow_resources::matches(o, s, &Default::default()))
                    })
                    .collect()
            }
        };
        shown.push((*kind, objects));
    }
    match args.output.as_str() {
        "json" | "yaml" => {
            let items: Vec<Value> = shown.into_iter().flat_map(|(_, o)| o).collect();
            let doc = match (&args.name, items.as_slice()) {
                (Some(_), [one]) => one.clone(),
                _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
            };
            if args.output == "json" {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", serde_saphyr::to_string(&doc)?);
            }
        }
        "name" => {
            for (kind, objects) in &shown {
                for o in objects {
                    println!(
                        "{}/{}",
                        kind.resource_name(),
                        o["metadata"]["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
        wide => {
            let mut first = true;
            for (kind, objects) in &shown {
                if objects.is_empty() {
                    continue;
                }
                if !first {
                    println!();
                }
                first = false;
                print!(
                    "{}",
                    table(kind, objects, args.all_namespaces, wide == "wide")
                );
            }
            if first {
                let scope = if args.all_namespaces {
                    String::new()
                } else {
                    format!(" in {ns} namespace")
                };
                eprintln!("No resources found{scope}.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A cell as kubectl prints it.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kind's printer columns as aligned text (kubectl's `get` table).
fn table(kind: &Kind, objects: &[Value], with_ns: bool, wide: bool) -> String {
    let now = Timestamp::now();
    let columns = printed_columns(kind);
    let keep: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, (_, _, priority))| wide || *priority == 0)
        .map(|(i, _)| i)
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = Vec::new();
    if with_ns && kind.namespaced {
        header.push("NAMESPACE".into());
    }
    header.extend(keep.iter().map(|&i| columns[i].0.to_uppercase()));
    rows.push(header);
    for o in objects {
        let cells = printed_cells(kind, o, now);
        let mut row = Vec::new();
        if with_ns && kind.namespaced {
            row.push(text(&o["metadata"]["namespace"]));
        }
        row.extend(keep.iter().map(|&i| text(&cells[i])));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `oxflow describe`: the object's metadata, spec and status as text, its
/// conditions as a table, and the events recorded about it.
pub async fn describe(cli: &Cli, args: &DescribeArgs) -> Result<ExitCode> {
    let kinds = resolve(&args.resource)?;
    let [kind] = kinds.as_slice() else {
        bail!("describe takes one kind, not {}", args.resource);
    };
    let backend = Backend::open(cli).await?;
    let ns = Namespace::new(cli.namespace.clone())?;
    let o = backend.get(kind, &ns, &args.name).await?;
    let meta = &o["metadata"];
    let field = |label: &str, v: String| println!("{:<14}{v}", format!("{label}:"));
    field("Name", text(&meta["name"]));
    if kind.namespaced {
        field("Namespace", text(&meta["namespace"]));
    }
    field("Labels", pairs(&meta["labels"]));
    field("Annotations", pairs(&meta["annotations"]));
    field("API Version", text(&o["apiVersion"]));
    field("Kind", text(&o["kind"]));
    field("Generation", text(&meta["generation"]));
    field("Created", text(&meta["creationTimestamp"]));
    if let Some(d) = meta.get("deletionTimestamp").filter(|d| !d.is_null()) {
        field("Deleting since", text(d));
    }
    for section in kind.fields.iter().filter(|f| **f != "status") {
        if let Some(v) = o.get(*section).filter(|v| !v.is_null()) {
            println!("{}:", capitalized(section));
            print!("{}", indented(&serde_saphyr::to_string(v)?));
        }
    }
    if let Some(status) = o.get("status").filter(|v| v.is_object()) {
        let mut rest = status.clone();
        let conditions = rest
            .as_object_mut()
            .and_then(|m| m.remove("conditions"))
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default();
        println!("Status:");
        if rest.as_object().is_some_and(|m| !m.is_empty()) {
            print!("{}", indented(&serde_saphyr::to_string(&rest)?));
        }
        if !conditions.is_empty() {
            println!("  Conditions:");
            println!("    {:<24}{:<8}{:<24}Message", "Type", "Status", "Reason");
            for c in &conditions {
                println!(
                    "    {:<24}{:<8}{:<24}{}",
                    text(&c["type"]),
                    text(&c["status"]),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                );
            }
        }
    }
    let events = events_of(&backend, &ns, &o).await?;
    if events.is_empty() {
        println!("Events:       <none>");
    } else {
        println!("Events:");
        println!("  {:<8}{:<24}{:<24}Message", "Type", "Reason", "From");
        for e in &events {
            println!(
                "  {:<8}{:<24}{:<24}{}",
                e["type"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                e["source"]["component"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The events whose `involvedObject` is `o` (by uid, else by kind and name).
async fn events_of(backend: &Backend, ns: &Namespace, o: &Value) -> Result<Vec<Value>> {
    let event = oxflow_server::registry()
        .by_kind("", "Event")
        .context("the registry has no Event kind")?;
    let uid = &o["metadata"]["uid"];
    Ok(backend
        .list(event, Some(ns))
        .await?
        .into_iter()
        .filter(|e| {
            let involved = &e["involvedObject"];
            if !involved["uid"].is_null() {
                involved["uid"] == *uid
            } else {
                involved["kind"] == o["kind"] && involved["name"] == o["metadata"]["name"]
            }
        })
        .collect())
}

fn pairs(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join("\n              "),
        _ => "<none>".into(),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn indented(yaml: &str) -> String {
    yaml.lines().map(|l| format!("  {l}\n")).collect()
}

/// `oxflow delete`.
pub async fn delete(cli: &Cli, args: &DeleteArgs) -> Result<ExitCode> {
    let kinds = resolve(&args.resource)?;
    let [kind] = kinds.as_slice() else {
        bail!("delete takes one kind, not {}", args.resource);
    };
    let backend = Backend::open(cli).await?;
    let ns = Namespace::new(cli.namespace.clone())?;
    let mut missing = false;
    for name in &args.names {
        if backend.delete(kind, &ns, name).await? {
            println!("{} \"{name}\" deleted", kind.resource_name());
        } else {
            eprintln!(
                "Error from server (NotFound): {} \"{name}\" not found",
                kind.resource_name()
            );
            missing = true;
        }
    }
    Ok(if missing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_resolve_as_kubectl_names_them() {
        assert_eq!(resolve("isvc").unwrap()[0].kind, "InferenceService");
        assert_eq!(resolve("trainedmodels").unwrap()[0].kind, "TrainedModel");
        let both = resolve("cm,ns").unwrap();
        assert_eq!((both[0].kind, both[1].kind), ("ConfigMap", "Namespace"));
        let e = resolve("widgets").unwrap_err().to_string();
        assert!(
            e.contains("\"widgets\"") && e.contains("inferenceservices (isvc)"),
            "{e}"
        );
    }

    #[test]
    fn tables_use_the_printer_columns() {
        let kind = resolve("isvc").unwrap()[0];
        let o = json!({"metadata": {"name": "iris", "namespace": "team",
                                    "creationTimestamp": Timestamp::now().to_rfc3339()},
                       "status": {"url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}});
        let t = table(kind, &[o], true, false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME   URL"), "{t}");
        assert!(
            lines[1].contains("team") && lines[1].contains("http://x") && lines[1].contains("True"),
            "{t}"
        );
        assert!(lines[1].contains("<none>"), "absent columns say so: {t}");
    }
}

/// Arguments of `oxflow logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`); with TASK, a pipeline run's id (or a
    /// unique prefix of it).
    pub target: String,
    /// A pipeline task's path or name (`train`, `for-loop-2/0/square`):
    /// prints that task's log rather than a pod's.
    pub task: Option<String>,
    /// The pod's container (needed when it has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing what the pod writes until it ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (-1: all, as kubectl).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// At most this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<u64>,
}

/// The pod a `logs` target names: `NAME`, `pod/NAME` or `pods/NAME`.
fn pod_target(target: &str) -> Result<&str> {
    let name = match target.split_once('/') {
        None => target,
        Some(("pod" | "pods" | "po", name)) => name,
        Some((kind, _)) => bail!(
            "{target}: only pods have logs here (`oxflow get pods -l ...` finds a {kind}'s pods)"
        ),
    };
    if name.is_empty() {
        bail!("{target}: the pod's name is empty");
    }
    Ok(name)
}

/// `oxflow logs POD`: the pod's output, as `kubectl logs` prints it (the
/// server's `pods/NAME/log`, or the same read of the data directory).
pub async fn pod_logs(cli: &Cli, args: &LogsArgs) -> Result<ExitCode> {
    use oxflow_resources::builtin::POD;
    use oxflow_resources::logs::{LogOptions, pick_container, send_pod_log};
    use std::io::Write;

    let name = pod_target(&args.target)?;
    let ns = Namespace::new(cli.namespace.clone())?;
    let tail_lines = u64::try_from(args.tail).ok();
    let backend = Backend::open(cli).await?;
    let pod = backend.get(&POD, &ns, name).await?;
    let container = pick_container(&pod, args.container.as_deref()).map_err(anyhow::Error::msg)?;
    match &backend {
        Backend::Remote(server) => {
            let mut query = vec![format!(
                "container={}",
                crate::remote::encode_query(&container)
            )];
            if args.follow {
                query.push("follow=true".into());
            }
            if let Some(n) = tail_lines {
                query.push(format!("tailLines={n}"));
            }
            if let Some(n) = args.limit_bytes {
                query.push(format!("limitBytes={n}"));
            }
            let path = format!(
                "{}/log?{}",
                crate::objects::item_path(&POD, &ns, name),
                query.join("&")
            );
            server.stream_to(&path, &mut std::io::stdout()).await?;
        }
        Backend::Local { ctx, resources } => {
            let (tuning, _) = ctx.tuning(resources.clone(), None, None)?;
            let providers: [&dyn oxflow_resources::PodLogs; 1] = [&tuning];
            let path = providers.iter().find_map(|p| p.log_path(&pod));
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let opts = LogOptions {
                tail_lines,
                limit_bytes: args.limit_bytes,
                follow: args.follow,
            };
            tokio::spawn(send_pod_log(
                resources.clone(),
                ns.as_str().to_owned(),
                name.to_owned(),
                path,
                opts,
                tx,
            ));
            let mut out = std::io::stdout();
            while let Some(bytes) = rx.recv().await {
                out.write_all(&bytes)?;
                out.flush()?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
