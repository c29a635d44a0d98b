//! The KFP executor protocol, host side: the `ExecutorInput` a component
//! receives, the placeholders in its command line, recognising lightweight
//! Python components (so the `pip install kfp` preamble can be skipped), and
//! reading `ExecutorOutput` back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::ir::{ArtifactType, ComponentSpec, ParameterType};
use crate::value;

/// A task's resolved inputs.
#[derive(Debug, Clone, Default)]
pub struct LeafInputs {
    /// Parameter values by input name (only those that have a value).
    pub params: Map<String, Value>,
    /// Artifacts by input name; each a list of RuntimeArtifact JSON objects.
    pub artifacts: BTreeMap<String, Vec<Value>>,
}

/// Where a task must write its outputs.
#[derive(Debug, Clone, Default)]
pub struct OutputPlan {
    /// Output parameter → (type, file the program may write it to).
    pub params: BTreeMap<String, (ParameterType, PathBuf)>,
    /// Output artifact → the pre-minted RuntimeArtifact.
    pub artifacts: BTreeMap<String, Value>,
    /// `executor_output.json`.
    pub output_file: PathBuf,
}

/// A RuntimeArtifact as the SDK reads it.
pub fn runtime_artifact(name: &str, ty: &ArtifactType, uri: &str, metadata: Value) -> Value {
    json!({
        "name": name,
        "type": {"schemaTitle": ty.schema_title, "schemaVersion": ty.schema_version},
        "uri": uri,
        "metadata": if metadata.is_object() { metadata } else { json!({}) },
    })
}

/// The `ExecutorInput` JSON (what `{{$}}` expands to).
pub fn executor_input(inputs: &LeafInputs, plan: &OutputPlan) -> Value {
    let mut ins = Map::new();
    if !inputs.params.is_empty() {
        ins.insert(
            "parameterValues".into(),
            Value::Object(inputs.params.clone()),
        );
    }
    if !inputs.artifacts.is_empty() {
        let arts: Map<String, Value> = inputs
            .artifacts
            .iter()
            .map(|(k, v)| (k.clone(), json!({"artifacts": v})))
            .collect();
        ins.insert("artifacts".into(), Value::Object(arts));
    }
    let mut outs = Map::new();
    if !plan.params.is_empty() {
        let ps: Map<String, Value> = plan
            .params
            .iter()
            .map(|(k, (_, f))| (k.clone(), json!({"outputFile": f.to_string_lossy()})))
            .collect();
        outs.insert("parameters".into(), Value::Object(ps));
    }
    if !plan.artifacts.is_empty() {
        let arts: Map<String, Value> = plan
            .artifacts
            .iter()
            .map(|(k, a)| (k.clone(), json!({"artifacts": [a]})))
            .collect();
        outs.insert("artifacts".into(), Value::Object(arts));
    }
    outs.insert(
        "outputFile".into(),
        Value::String(plan.output_file.to_string_lossy().into_owned()),
    );
    json!({"inputs": ins, "outputs": outs})
}

/// Run- and task-level values for `{{$.pipeline_job_name}}` and friends.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// The run's display name.
    pub job_name: String,
    /// The run's resource name (its id).
    pub job_resource_name: String,
    /// The run id.
    pub job_uuid: String,
    /// The task's name.
    pub task_name: String,
    /// The task record's id.
    pub task_uuid: String,
    /// The artifact root of the run.
    pub pipeline_root: String,
    /// RFC 3339 creation time.
    pub create_time: String,
    /// RFC 3339 schedule time.
    pub schedule_time: String,
    /// The workspace directory.
    pub workspace_path: String,
}

/// Everything placeholder substitution needs.
pub struct Placeholders<'a> {
    /// Inputs.
    pub inputs: &'a LeafInputs,
    /// Outputs.
    pub plan: &'a OutputPlan,
    /// Job values.
    pub job: &'a JobInfo,
    /// `{{$}}`.
    pub executor_input_json: String,
}

impl Placeholders<'_> {
    /// Resolves a command or argument list. `IfPresent` and `Concat`
    /// (written by the compiler as JSON text in one argument) expand in place.
    pub fn resolve_all(&self, args: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            self.expand(a, &mut out)?;
        }
        Ok(out)
    }

    fn expand(&self, arg: &str, out: &mut Vec<String>) -> Result<(), String> {
        let t = arg.trim_start();
        if (t.starts_with("{\"IfPresent\"") || t.starts_with("{\"Concat\""))
            && let Ok(v) = serde_json::from_str::<Value>(t)
        {
            return self.expand_json(&v, out);
        }
        out.push(self.substitute(arg));
        Ok(())
    }

    fn expand_json(&self, v: &Value, out: &mut Vec<String>) -> Result<(), String> {
        match v {
            Value::String(s) => {
                self.expand(s, out)?;
            }
            Value::Object(m) if m.contains_key("IfPresent") => {
                let ip = &m["IfPresent"];
                let name = ip
                    .get("InputName")
                    .and_then(Value::as_str)
                    .ok_or("IfPresent placeholder without InputName")?;
                let present = self.inputs.params.contains_key(name)
                    || self.inputs.artifacts.contains_key(name);
                let branch = if present {
                    ip.get("Then")
                } else {
                    ip.get("Else")
                };
                match branch {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for i in items {
                            self.expand_json(i, out)?;
                        }
                    }
                    Some(other) => self.expand_json(other, out)?,
                }
            }
            Value::Object(m) if m.contains_key("Concat") => {
                let parts = m["Concat"]
                    .as_array()
                    .ok_or("Concat placeholder needs a list")?;
                let mut s = String::new();
                for p in parts {
                    let mut tmp = Vec::new();
                    self.expand_json(p, &mut tmp)?;
                    s.push_str(&tmp.concat());
                }
                out.push(s);
            }
            other => out.push(value::to_text(other)),
        }
        Ok(())
    }

    /// Replaces every `{{$…}}` in `s`. Unknown placeholders stay as written,
    /// as the KFP launcher leaves them.
    pub fn substitute(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("{{$") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}") {
                Some(end) => {
                    let expr = &after[..end];
                    match self.lookup(expr) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&rest[start..start + 2 + end + 2]),
                    }
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn lookup(&self, expr: &str) -> Option<String> {
        if expr == "$" {
            return Some(self.executor_input_json.clone());
        }
        let e = expr.strip_prefix("$.")?;
        let j = self.job;
        let simple = match e {
            "pipeline_job_name" => Some(&j.job_name),
            "pipeline_job_resource_name" => Some(&j.job_resource_name),
            "pipeline_job_uuid" => Some(&j.job_uuid),
            "pipeline_task_name" => Some(&j.task_name),
            "pipeline_task_uuid" => Some(&j.task_uuid),
            "pipeline_root" => Some(&j.pipeline_root),
            "pipeline_job_create_time_utc" => Some(&j.create_time),
            "pipeline_job_schedule_time_utc" => Some(&j.schedule_time),
            "workspace_path" => Some(&j.workspace_path),
            "outputs.output_file" if !self.plan.output_file.as_os_str().is_empty() => {
                return Some(self.plan.output_file.to_string_lossy().into_owned());
            }
            _ => None,
        };
        if let Some(v) = simple {
            return Some(v.clone());
        }
        if let Some(r) = e.strip_prefix("inputs.parameters[") {
            let (name, tail) = bracket_name(r)?;
            if !tail.is_empty() {
                return None;
            }
            return self.inputs.params.get(name).map(value::to_text);
        }
        if let Some(r) = e.strip_prefix("outputs.parameters[") {
            let (name, tail) = bracket_name(r)?;
            if tail == ".output_file" {
                return self
                    .plan
                    .params
                    .get(name)
                    .map(|(_, p)| p.to_string_lossy().into_owned());
            }
            return None;
        }
        if let Some(r) = e.strip_prefix("inputs.artifacts[") {
            let (name, tail) = bracket_name(r)?;
            let a = self.inputs.artifacts.get(name)?.first()?;
            return artifact_field(a, tail);
        }
        if let Some(r) = e.strip_prefix("outputs.artifacts[") {
            let (name, tail) = bracket_name(r)?;
            let a = self.plan.artifacts.get(name)?;
            return artifact_field(a, tail);
        }
        None
    }
}

/// `'name'].rest` → (`name`, `.rest`).
fn bracket_name(r: &str) -> Option<(&str, &str)> {
    let q = r.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let body = &r[1..];
    let end = body.find(q)?;
    let name = &body[..end];
    let tail = body[end + 1..].strip_prefix(']')?;
    Some((name, tail))
}

fn artifact_field(a: &Value, tail: &str) -> Option<String> {
    match tail {
        ".uri" | ".path" => a.get("uri").and_then(Value::as_str).map(str::to_owned),
        ".metadata" => Some(serde_json::to_string(a.get("metadata")?).ok()?),
        t => {
            let r = t.strip_prefix(".metadata[")?;
            let (k, rest) = bracket_name(r)?;
            if !rest.is_empty() {
                return None;
            }
            a.get("metadata")?.get(k).map(value::to_text)
        }
    }
}

/// A lightweight Python component, recognised from the compiler's command shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Lightweight {
    /// The user's function source (`ephemeral_component.py`).
    pub source: String,
    /// `packages_to_install` (pip requirement strings).
    pub packages: Vec<String>,
    /// pip options that came with them (`--index-url …`, `--trusted-host …`).
    pub pip_options: Vec<String>,
    /// `kfp==X` the compiler asked for, when it did.
    pub kfp_requirement: Option<String>,
}

/// Recognises `sh -c <pip preamble> sh -ec <launcher> <source>` and
/// `sh -ec <launcher> <source>`; anything else is run as written.
pub fn classify(command: &[String]) -> Option<Lightweight> {
    let (preamble, rest) = match command {
        [sh, c, pre, rest @ ..]
            if sh == "sh"
                && c == "-c"
                && pre.contains("pip install")
                && pre.trim_end().ends_with("\"$0\" \"$@\"") =>
        {
            (Some(pre.as_str()), rest)
        }
        _ => (None, command),
    };
    let [sh, ec, launcher, source] = rest else {
        return None;
    };
    if sh != "sh"
        || ec != "-ec"
        || !launcher.contains("kfp.dsl.executor_main")
        || !launcher.contains("--component_module_path")
    {
        return None;
    }
    let mut lw = Lightweight {
        source: source.clone(),
        packages: Vec::new(),
        pip_options: Vec::new(),
        kfp_requirement: None,
    };
    if let Some(pre) = preamble {
        for cmd in pre.split("&&") {
            let Some(idx) = cmd.find("pip install") else {
                continue;
            };
            let toks = shell_words(&cmd[idx + "pip install".len()..]);
            let is_kfp = toks.iter().any(|t| t.starts_with("kfp=="));
            let mut i = 0;
            while i < toks.len() {
                let t = &toks[i];
                if is_kfp {
                    if t.starts_with("kfp==") {
                        lw.kfp_requirement = Some(t.clone());
                    }
                } else if matches!(
                    t.as_str(),
                    "--index-url" | "--extra-index-url" | "--trusted-host" | "-i"
                ) {
                    lw.pip_options.push(t.clone());
                    if let Some(v) = toks.get(i + 1) {
                        lw.pip_options.push(v.clone());
                    }
                    i += 1;
                } else if !t.starts_with('-') {
                    lw.packages.push(t.clone());
                }
                i += 1;
            }
        }
    }
    Some(lw)
}

/// Splits a shell fragment into words, honouring single and double quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if d == '"' {
                        break;
                    } else {
                        cur.push(d);
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What a finished task produced.
#[derive(Debug, Clone, Default)]
pub struct LeafOutputs {
    /// Output parameters, cast to their declared types.
    pub params: Map<String, Value>,
    /// Output artifacts (RuntimeArtifact JSON), one per output.
    pub artifacts: BTreeMap<String, Vec<Value>>,
}

/// Reads outputs back with the launcher's precedence: `executor_output.json`
/// first, then each parameter's output file; integers cast by type.
pub fn read_outputs(comp: &ComponentSpec, plan: &OutputPlan) -> Result<LeafOutputs, String> {
    let mut eo = Value::Null;
    match std::fs::read_to_string(&plan.output_file) {
        Ok(text) => {
            eo = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not valid JSON: {e}", plan.output_file.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", plan.output_file.display())),
    }
    let mut out = LeafOutputs::default();
    for (name, (ty, file)) in &plan.params {
        let from_eo = eo.get("parameterValues").and_then(|p| p.get(name)).cloned();
        let v = match from_eo {
            Some(v) => {
                value::coerce(*ty, &v).map_err(|m| format!("output parameter {name:?}: {m}"))?
            }
            None => match std::fs::read_to_string(file) {
                Ok(text) => value::from_output_text(*ty, &text)
                    .map_err(|m| format!("output parameter {name:?}: {m}"))?,
                Err(_) => {
                    return Err(format!(
                        "output parameter {name:?} was not produced (neither in {} nor in {})",
                        plan.output_file.display(),
                        file.display()
                    ));
                }
            },
        };
        out.params.insert(name.clone(), v);
    }
    for (name, minted) in &plan.artifacts {
        let mut art = minted.clone();
        if let Some(ret) = eo
            .get("artifacts")
            .and_then(|a| a.get(name))
            .and_then(|a| a.get("artifacts"))
            .and_then(|a| a.get(0))
        {
            if let Some(uri) = ret
                .get("uri")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                art["uri"] = Value::String(uri.to_owned());
            }
            if let (Some(Value::Object(meta)), Some(Value::Object(base))) =
                (ret.get("metadata"), art.get_mut("metadata"))
            {
                for (k, v) in meta {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(Value::Object(meta)) = art.get_mut("metadata") {
            let normalized = value::normalize_numbers(Value::Object(std::mem::take(meta)));
            if let Value::Object(m) = normalized {
                *meta = m;
            }
        }
        out.artifacts.insert(name.clone(), vec![art]);
    }
    // Keep declared-but-unplanned outputs out; a component cannot invent outputs.
    let _ = comp;
    Ok(out)
}

/// The component file name kfp's launcher writes the source to.
pub const COMPONENT_FILE: &str = "ephemeral_component.py";

/// Writes a lightweight component's source where `executor_main` will load it.
pub fn write_component_source(dir: &Path, source: &str) -> std::io::Result<PathBuf> {
    let p = dir.join(COMPONENT_FILE);
    std::fs::write(&p, source)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> OutputPlan {
        let mut p = OutputPlan {
            output_file: "/r/t/executor_output.json".into(),
            ..Default::default()
        };
        p.params.insert(
            "count".into(),
            (ParameterType::NumberInteger, "/r/t/outputs/count".into()),
        );
        p.artifacts.insert(
            "out".into(),
            runtime_artifact(
                "out",
                &ArtifactType {
                    schema_title: "system.Dataset".into(),
                    schema_version: "0.0.1".into(),
                },
                "/r/t/out",
                json!({}),
            ),
        );
        p
    }

    fn inputs() -> LeafInputs {
        let mut i = LeafInputs::default();
        i.params.insert("n".into(), json!(5));
        i.params.insert("verbose".into(), json!(true));
        i.params.insert("cfg".into(), json!({"k": 1}));
        i.artifacts.insert(
            "inp".into(),
            vec![json!({"name": "inp", "uri": "/r/w/out", "metadata": {"rows": 3}})],
        );
        i
    }

    #[test]
    fn placeholders() {
        let (i, p, j) = (
            inputs(),
            plan(),
            JobInfo {
                job_name: "my-run".into(),
                task_name: "count".into(),
                ..Default::default()
            },
        );
        let ph = Placeholders {
            inputs: &i,
            plan: &p,
            job: &j,
            executor_input_json: "{EI}".into(),
        };
        let cases: &[(&str, &str)] = &[
            ("{{$}}", "{EI}"),
            ("{{$.inputs.parameters['n']}}", "5"),
            (
                "n={{$.inputs.parameters['n']}}/{{$.inputs.parameters[\"verbose\"]}}",
                "n=5/true",
            ),
            ("{{$.inputs.parameters['cfg']}}", "{\"k\":1}"),
            ("{{$.inputs.artifacts['inp'].path}}", "/r/w/out"),
            ("{{$.inputs.artifacts['inp'].uri}}", "/r/w/out"),
            ("{{$.inputs.artifacts['inp'].metadata}}", "{\"rows\":3}"),
            ("{{$.inputs.artifacts['inp'].metadata['rows']}}", "3"),
            ("{{$.outputs.artifacts['out'].path}}", "/r/t/out"),
            (
                "{{$.outputs.parameters['count'].output_file}}",
                "/r/t/outputs/count",
            ),
            ("{{$.outputs.output_file}}", "/r/t/executor_output.json"),
            (
                "{{$.pipeline_job_name}}-{{$.pipeline_task_name}}",
                "my-run-count",
            ),
            (
                "{{$.inputs.parameters['missing']}}",
                "{{$.inputs.parameters['missing']}}",
            ),
            ("plain {{ not a placeholder", "plain {{ not a placeholder"),
        ];
        for (input, want) in cases {
            assert_eq!(ph.substitute(input), *want, "{input}");
        }
        let args: Vec<String> = vec![
            r#"{"IfPresent": {"InputName": "verbose", "Then": ["--verbose", "{{$.inputs.parameters['verbose']}}"], "Else": ["--quiet"]}}"#.into(),
            r#"{"IfPresent": {"InputName": "absent", "Then": ["--x"], "Else": ["--quiet"]}}"#.into(),
            r#"{"IfPresent": {"InputName": "absent", "Then": ["--x"]}}"#.into(),
            r#"{"Concat": ["uri=", "{{$.inputs.artifacts['inp'].uri}}", {"Concat": ["/", "{{$.inputs.parameters['n']}}"]}]}"#.into(),
        ];
        assert_eq!(
            ph.resolve_all(&args).unwrap(),
            vec!["--verbose", "true", "--quiet", "uri=/r/w/out/5"]
        );
    }

    #[test]
    fn executor_input_shape() {
        let ei = executor_input(&inputs(), &plan());
        assert_eq!(ei["inputs"]["parameterValues"]["n"], json!(5));
        assert_eq!(
            ei["inputs"]["artifacts"]["inp"]["artifacts"][0]["uri"],
            "/r/w/out"
        );
        assert_eq!(
            ei["outputs"]["parameters"]["count"]["outputFile"],
            "/r/t/outputs/count"
        );
        assert_eq!(
            ei["outputs"]["artifacts"]["out"]["artifacts"][0]["type"]["schemaTitle"],
            "system.Dataset"
        );
        assert_eq!(ei["outputs"]["outputFile"], "/r/t/executor_output.json");
    }

    #[test]
    fn recognises_lightweight_components() {
        let pre = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'six==1.16.0' --index-url https://example.invalid/simple  &&  python3 -m pip install --quiet --no-warn-script-location 'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
        let launcher = "program_path=$(mktemp -d)\nprintf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"\n_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path \"$program_path/ephemeral_component.py\" \"$@\"\n";
        let cmd: Vec<String> = ["sh", "-c", pre, "sh", "-ec", launcher, "def f(): pass"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lw = classify(&cmd).unwrap();
        assert_eq!(lw.packages, vec!["six==1.16.0"]);
        assert_eq!(
            lw.pip_options,
            vec!["--index-url", "https://example.invalid/simple"]
        );
        assert_eq!(lw.kfp_requirement.as_deref(), Some("kfp==2.17.3"));
        assert_eq!(lw.source, "def f(): pass");
        // install_kfp_package=False: no preamble at all.
        let bare = classify(&cmd[3..]).unwrap();
        assert!(bare.packages.is_empty() && bare.kfp_requirement.is_none());
        // A container component is not lightweight.
        assert!(classify(&["sh".into(), "-c".into(), "echo hi".into()]).is_none());
    }

    #[test]
    fn reads_outputs_with_launcher_precedence() {
        let d = tempfile::tempdir().unwrap();
        let mut p = plan();
        p.output_file = d.path().join("executor_output.json");
        let count_file = d.path().join("count");
        p.params.insert(
            "count".into(),
            (ParameterType::NumberInteger, count_file.clone()),
        );
        p.params
            .insert("msg".into(), (ParameterType::String, d.path().join("msg")));
        let comp = ComponentSpec::default();
        // Missing outputs are an error naming the parameter.
        let e = read_outputs(&comp, &p).unwrap_err();
        assert!(e.contains("\"count\""), "{e}");
        std::fs::write(&count_file, "7").unwrap();
        std::fs::write(
            &p.output_file,
            r#"{"parameterValues": {"msg": "hi", "count": 3.0}, "artifacts": {"out": {"artifacts": [{"name": "out", "uri": "", "metadata": {"acc": 1.0, "k": "v"}}]}}}"#,
        )
        .unwrap();
        let o = read_outputs(&comp, &p).unwrap();
        assert_eq!(
            o.params["count"],
            json!(3),
            "executor_output.json wins over the file"
        );
        assert_eq!(o.params["msg"], json!("hi"));
        assert_eq!(
            o.artifacts["out"][0]["uri"], "/r/t/out",
            "empty uri keeps the minted one"
        );
        assert_eq!(
            o.artifacts["out"][0]["metadata"],
            json!({"acc": 1, "k": "v"})
        );
    }
}
