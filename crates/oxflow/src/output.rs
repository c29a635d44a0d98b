//! What the CLI prints: live progress, run summaries, JSON views.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use oxflow_core::TaskState;
use oxflow_pipelines::TaskEvent;
use oxflow_store::{RunRecord, TaskRecord, TaskSummary};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

/// Writes a line to stderr, ignoring a stderr that is closed: unlike
/// `eprintln!`, which panics when nobody reads stderr any more (a parent
/// that started the server and died), so that a server asked to stop
/// still stops.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn duration_ms(
    start: Option<oxflow_core::Timestamp>,
    end: Option<oxflow_core::Timestamp>,
) -> Option<i64> {
    Some(start?.millis_until(end?))
}

fn fmt_ms(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Shows tasks done / running / failed while a run executes.
pub async fn progress(mut rx: UnboundedReceiver<TaskEvent>) {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut states: HashMap<String, TaskState> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        // Only leaves count as work; DAG, loop and iteration nodes are structure.
        let leaf = matches!(ev.kind, "container" | "importer");
        let prev = states.insert(ev.path.clone(), ev.state);
        if leaf && ev.state.is_terminal() && prev != Some(ev.state) {
            let mark = match ev.state {
                TaskState::Succeeded if ev.cached => "cached",
                TaskState::Succeeded => "done",
                TaskState::Skipped => "skipped",
                TaskState::Failed => "FAILED",
                TaskState::Canceled => "canceled",
                _ => "",
            };
            let line = format!("  {mark:>8}  {}", ev.path);
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        if let Some(b) = &bar {
            let count = |f: &dyn Fn(TaskState) -> bool| states.values().filter(|s| f(**s)).count();
            b.set_message(format!(
                "{} done · {} running · {} failed",
                count(&|s| s == TaskState::Succeeded || s == TaskState::Skipped),
                count(&|s| s == TaskState::Running),
                count(&|s| s == TaskState::Failed),
            ));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// One task as it appears in a run's JSON.
fn task_json(t: &TaskRecord) -> Value {
    json!({
        "id": t.id,
        "path": t.path,
        "parent": t.parent_path,
        "name": t.name,
        "display_name": t.display_name,
        "kind": t.kind,
        "state": t.state,
        "cached": t.cached,
        "attempt": t.attempt,
        "started_at": t.started_at.map(|s| s.to_rfc3339()),
        "finished_at": t.finished_at.map(|s| s.to_rfc3339()),
        "duration_ms": duration_ms(t.started_at, t.finished_at),
        "inputs": t.inputs,
        "outputs": t.outputs,
        "error": t.error,
        "log_path": t.log_path,
    })
}

/// The run with its tasks as JSON (`runs get -o json`).
pub fn run_json(run: &RunRecord, tasks: &[TaskRecord]) -> Value {
    let mut v = run_head_json(run);
    v["tasks"] = Value::Array(tasks.iter().map(task_json).collect());
    v
}

/// The run's own fields, without `tasks`.
fn run_head_json(run: &RunRecord) -> Value {
    json!({
        "id": run.id,
        "name": run.display_name,
        "namespace": run.namespace,
        "pipeline": run.pipeline_name,
        "state": run.state,
        "error": run.error,
        "parameters": run.parameters,
        "outputs": run.outputs,
        "created_at": run.created_at.to_rfc3339(),
        "started_at": run.started_at.map(|s| s.to_rfc3339()),
        "finished_at": run.finished_at.map(|s| s.to_rfc3339()),
        "duration_ms": duration_ms(run.started_at, run.finished_at),
    })
}

/// Writes [`run_json`]'s document one task at a time, so printing a
/// 10,000-task run holds one page of tasks rather than all of them as
/// `Value`s (about 6 KiB each). The text is the same JSON, pretty-printed,
/// with `tasks` as the last key.
pub struct RunJsonWriter<W: Write> {
    out: W,
    tasks: usize,
}

impl<W: Write> RunJsonWriter<W> {
    /// Writes the run's own fields and opens the `tasks` array.
    pub fn begin(mut out: W, run: &RunRecord) -> std::io::Result<Self> {
        let head = serde_json::to_string_pretty(&run_head_json(run))?;
        // A non-empty object pretty-prints as "{\n  ...\n}".
        let body = head.strip_suffix("\n}").unwrap_or(&head);
        write!(out, "{body},\n  \"tasks\": [")?;
        Ok(RunJsonWriter { out, tasks: 0 })
    }

    /// Appends one task to the array.
    pub fn task(&mut self, t: &TaskRecord) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&task_json(t))?;
        self.out
            .write_all(if self.tasks == 0 { b"\n" } else { b",\n" })?;
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
            }
            write!(self.out, "    {line}")?;
        }
        self.tasks += 1;
        Ok(())
    }

    /// Closes the array and the document.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.tasks == 0 {
            self.out.write_all(b"]\n}\n")?;
        } else {
            self.out.write_all(b"\n  ]\n}\n")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A human summary of one run.
pub fn print_summary(run: &RunRecord, tasks: &[TaskSummary]) {
    println!("run       {}", run.id);
    println!("name      {}", run.display_name);
    println!("pipeline  {}", run.pipeline_name);
    println!("state     {}", run.state);
    println!(
        "duration  {}",
        fmt_ms(duration_ms(run.started_at, run.finished_at))
    );
    if let Some(e) = &run.error {
        println!("error     {e}");
    }
    if let Value::Object(o) = &run.outputs {
        for (k, v) in o {
            println!("output    {k} = {}", compact(v));
        }
    }
    if !tasks.is_empty() {
        println!();
        println!(
            "{:<44} {:<10} {:>9} {:>7}",
            "TASK", "STATE", "DURATION", "ATTEMPT"
        );
        for t in tasks {
            let state = if t.cached {
                "CACHED".to_owned()
            } else {
                t.state.to_string()
            };
            println!(
                "{:<44} {:<10} {:>9} {:>7}",
                t.path,
                state,
                fmt_ms(duration_ms(t.started_at, t.finished_at)),
                t.attempt
            );
            if t.state == TaskState::Failed
                && let Some(e) = &t.error
            {
                println!("    {e}");
            }
        }
    }
}

fn compact(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s
    }
}

/// A table of runs.
pub fn print_runs(runs: &[RunRecord]) {
    println!(
        "{:<36} {:<28} {:<10} {:>9}  CREATED",
        "RUN", "NAME", "STATE", "DURATION"
    );
    for r in runs {
        println!(
            "{:<36} {:<28} {:<10} {:>9}  {}",
            r.id,
            r.display_name.chars().take(28).collect::<String>(),
            r.state,
            fmt_ms(duration_ms(r.started_at, r.finished_at)),
            r.created_at
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxflow_core::{RunState, Timestamp};

    fn run() -> RunRecord {
        RunRecord {
            id: "r1".into(),
            display_name: "demo".into(),
            pipeline_name: "p".into(),
            parameters: json!({"n": 3}),
            state: RunState::Succeeded,
            outputs: json!({"Output": [1, 2]}),
            created_at: Timestamp(1),
            started_at: Some(Timestamp(2)),
            finished_at: Some(Timestamp(5)),
            ..Default::default()
        }
    }

    fn task(path: &str) -> TaskRecord {
        TaskRecord {
            id: format!("id-{path}"),
            run_id: "r1".into(),
            path: path.into(),
            parent_path: String::new(),
            name: path.into(),
            display_name: path.into(),
            kind: "container".into(),
            state: TaskState::Succeeded,
            attempt: 1,
            cached: false,
            inputs: json!({"parameters": {"x": {"nested": [1, "two\nlines"]}}}),
            outputs: json!({"parameters": {"Output": 2}}),
            error: None,
            log_path: Some("/tmp/log".into()),
            cache_key: None,
            created_at: Timestamp(1),
            started_at: Some(Timestamp(2)),
            finished_at: Some(Timestamp(4)),
        }
    }

    fn streamed(run: &RunRecord, tasks: &[TaskRecord]) -> String {
        let mut w = RunJsonWriter::begin(Vec::new(), run).unwrap();
        for t in tasks {
            w.task(t).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_streamed_document_is_run_json() {
        let run = run();
        for n in [0, 1, 3] {
            let tasks: Vec<TaskRecord> = (0..n).map(|i| task(&format!("t{i}"))).collect();
            let text = streamed(&run, &tasks);
            let parsed: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{n} tasks: {e}\n{text}"));
            assert_eq!(parsed, run_json(&run, &tasks), "{n} tasks");
            assert!(text.ends_with("}\n"), "{text}");
        }
    }
}
