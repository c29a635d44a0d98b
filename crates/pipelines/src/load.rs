//! Loading and validating compiled pipelines.
//!
//! Everything the engine relies on is checked here, before a run record is
//! written: a spec that loads will not fail later for a dangling reference,
//! a cycle or an unparsable condition. Errors name the field path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PipelineError, Result};
use crate::ir::{
    ComponentSpec, KubernetesExecutorConfig, ParameterType, PipelineSpec, PlatformSpec,
};
use crate::{cel, value};

/// Schema versions this engine understands.
pub const SUPPORTED_SCHEMA_VERSIONS: [&str; 2] = ["2.0.0", "2.1.0"];

/// Inputs larger than this are refused before parsing.
pub const MAX_PIPELINE_BYTES: usize = 32 * 1024 * 1024;

/// A validated pipeline: the spec plus its Kubernetes platform config.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The PipelineSpec.
    pub spec: PipelineSpec,
    /// The raw platform spec, kept to store with the run.
    pub platform: Option<PlatformSpec>,
    /// `platforms.kubernetes.deploymentSpec.executors`, typed.
    pub kubernetes: BTreeMap<String, KubernetesExecutorConfig>,
}

impl Pipeline {
    /// Reads a compiled pipeline (YAML or JSON) from a file.
    pub fn load_file(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| PipelineError::io(path, e))?;
        if meta.len() as usize > MAX_PIPELINE_BYTES {
            return Err(PipelineError::invalid(
                &path.display().to_string(),
                "",
                format!(
                    "file is {} bytes; the limit is {MAX_PIPELINE_BYTES}",
                    meta.len()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        Self::load_str(&text, &path.display().to_string())
    }

    /// Parses YAML (one or two documents) or JSON text.
    pub fn load_str(text: &str, source_name: &str) -> Result<Self> {
        if text.len() > MAX_PIPELINE_BYTES {
            return Err(PipelineError::invalid(
                source_name,
                "",
                format!(
                    "input is {} bytes; the limit is {MAX_PIPELINE_BYTES}",
                    text.len()
                ),
            ));
        }
        if let Some((spec, platform)) = read_typed(text) {
            return Self::assemble(spec, platform, source_name);
        }
        Self::load_str_via_values(text, source_name)
    }

    /// The general path: the text as generic values first, then typed. Any
    /// input [`read_typed`] declines comes here, and every error is reported
    /// from here, with its field path.
    fn load_str_via_values(text: &str, source_name: &str) -> Result<Self> {
        // JSON is tried first when it looks like JSON (it is faster and its
        // errors are clearer); YAML reads everything else, JSON documents
        // separated by `---` included.
        let json = text
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<Value>(text));
        let docs: Vec<Value> = match json {
            Some(Ok(v)) => vec![v],
            _ => serde_saphyr::from_multiple_with_options::<Value>(text, yaml_options(false))
                .map_err(|e| PipelineError::Syntax {
                    source_name: source_name.to_owned(),
                    message: e.to_string(),
                })?,
        };
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        match docs.len() {
            0 => Err(PipelineError::invalid(
                source_name,
                "",
                "the document is empty",
            )),
            1 => Self::from_json(docs.into_iter().next().unwrap_or_default(), source_name),
            2 => {
                let mut it = docs.into_iter();
                let spec = it.next().unwrap_or_default();
                let platform = it.next().unwrap_or_default();
                Self::from_parts(spec, Some(platform), source_name)
            }
            n => Err(PipelineError::invalid(
                source_name,
                "",
                format!(
                    "expected a PipelineSpec and an optional PlatformSpec document, found {n} documents"
                ),
            )),
        }
    }

    /// Accepts a bare PipelineSpec or the API's `{"pipeline_spec": …, "platform_spec": …}` wrapper.
    pub fn from_json(doc: Value, source_name: &str) -> Result<Self> {
        if let Value::Object(m) = &doc
            && m.contains_key("pipeline_spec")
            && !m.contains_key("root")
        {
            let spec = m.get("pipeline_spec").cloned().unwrap_or_default();
            let platform = m.get("platform_spec").cloned().filter(|v| !v.is_null());
            return Self::from_parts(spec, platform, source_name);
        }
        Self::from_parts(doc, None, source_name)
    }

    fn from_parts(spec: Value, platform: Option<Value>, source_name: &str) -> Result<Self> {
        if !spec.is_object() {
            return Err(PipelineError::invalid(
                source_name,
                "",
                format!(
                    "expected a PipelineSpec mapping, found {}",
                    value::kind(&spec)
                ),
            ));
        }
        match spec.get("schemaVersion") {
            None => {
                return Err(PipelineError::invalid(
                    source_name,
                    "schemaVersion",
                    "missing; this does not look like a pipeline compiled by the kfp v2 SDK",
                ));
            }
            Some(Value::String(v)) if SUPPORTED_SCHEMA_VERSIONS.contains(&v.as_str()) => {}
            Some(v) => {
                return Err(PipelineError::invalid(
                    source_name,
                    "schemaVersion",
                    format!(
                        "unsupported schema version {v}; Oxflow reads {} (compile with kfp 2.x)",
                        SUPPORTED_SCHEMA_VERSIONS.join(" and ")
                    ),
                ));
            }
        }
        let spec: PipelineSpec = typed(spec, source_name, "")?;
        let platform = match platform {
            None => None,
            Some(p) => Some(typed::<PlatformSpec>(p, source_name, "platformSpec")?),
        };
        Self::assemble(spec, platform, source_name)
    }

    /// Types the Kubernetes executor configs of `platform` and validates
    /// the whole pipeline: the last step of every way of loading one.
    fn assemble(
        spec: PipelineSpec,
        platform: Option<PlatformSpec>,
        source_name: &str,
    ) -> Result<Self> {
        let mut kubernetes = BTreeMap::new();
        if let Some(k8s) = platform
            .as_ref()
            .and_then(|p| p.platforms.get("kubernetes"))
        {
            let e = k8s
                .get("deploymentSpec")
                .and_then(|d| d.get("executors"))
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            kubernetes = typed(
                e,
                source_name,
                "platformSpec.platforms.kubernetes.deploymentSpec.executors",
            )?;
        }
        let p = Pipeline {
            spec,
            platform,
            kubernetes,
        };
        Validator {
            spec: &p.spec,
            src: source_name,
        }
        .validate(&p.kubernetes)?;
        Ok(p)
    }

    /// Reads the JSON text [`Pipeline::to_stored_json`] wrote straight into
    /// the typed structs, without an intermediate `serde_json::Value` (which
    /// costs several times the typed form for large pipelines), and
    /// validates it again.
    pub fn from_stored_text(text: &str, source_name: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Stored {
            pipeline_spec: PipelineSpec,
            #[serde(default)]
            platform_spec: Option<PlatformSpec>,
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let stored: Stored = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            PipelineError::invalid(
                source_name,
                e.path().to_string(),
                e.into_inner().to_string(),
            )
        })?;
        if !SUPPORTED_SCHEMA_VERSIONS.contains(&stored.pipeline_spec.schema_version.as_str()) {
            return Err(PipelineError::invalid(
                source_name,
                "pipeline_spec.schemaVersion",
                format!(
                    "unsupported schema version {:?}",
                    stored.pipeline_spec.schema_version
                ),
            ));
        }
        Self::assemble(stored.pipeline_spec, stored.platform_spec, source_name)
    }

    /// The JSON stored with a run and served by the API (`{"pipeline_spec", "platform_spec"}`).
    pub fn to_stored_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert(
            "pipeline_spec".into(),
            serde_json::to_value(&self.spec).unwrap_or_default(),
        );
        if let Some(p) = &self.platform {
            m.insert(
                "platform_spec".into(),
                serde_json::to_value(p).unwrap_or_default(),
            );
        }
        Value::Object(m)
    }

    /// [`Pipeline::to_stored_json`] as text, written straight from the typed
    /// structs: the same text as `to_stored_json().to_string()`, without
    /// building the generic value (several times the typed size) on the way.
    pub fn to_stored_text(&self) -> String {
        #[derive(Serialize)]
        struct Stored<'a> {
            pipeline_spec: &'a PipelineSpec,
            #[serde(skip_serializing_if = "Option::is_none")]
            platform_spec: Option<&'a PlatformSpec>,
        }
        let stored = Stored {
            pipeline_spec: &self.spec,
            platform_spec: self.platform.as_ref(),
        };
        // Sized first, then written once into a buffer of exactly that
        // size: a growing buffer would reach up to twice the text (MiBs for
        // a large pipeline) at the moment the spec is stored. Serialising
        // these types cannot fail: every map is keyed by strings.
        let Some(size) = oxflow_core::spec::json_len(&stored) else {
            return "null".to_owned();
        };
        let mut text = Vec::with_capacity(size);
        if serde_json::to_writer(&mut text, &stored).is_err() {
            return "null".to_owned();
        }
        String::from_utf8(text).unwrap_or_else(|_| "null".to_owned())
    }

    /// Applies defaults to user-supplied parameters and checks them against
    /// the root's `inputDefinitions`.
    pub fn bind_parameters(
        &self,
        given: &BTreeMap<String, Value>,
    ) -> Result<serde_json::Map<String, Value>> {
        let defs = &self.spec.root.input_definitions.parameters;
        for name in given.keys() {
            if !defs.contains_key(name) {
                let known: Vec<&str> = defs.keys().map(String::as_str).collect();
                return Err(PipelineError::Parameter {
                    name: name.clone(),
                    message: if known.is_empty() {
                        "the pipeline takes no parameters".into()
                    } else {
                        format!(
                            "the pipeline has no such parameter (it has: {})",
                            known.join(", ")
                        )
                    },
                });
            }
        }
        let mut out = serde_json::Map::new();
        for (name, def) in defs {
            let v = match given.get(name).or(def.default_value.as_ref()) {
                Some(v) => v,
                None if def.is_optional => continue,
                None => {
                    return Err(PipelineError::Parameter {
                        name: name.clone(),
                        message: format!("required parameter is missing (pass -p {name}=VALUE)"),
                    });
                }
            };
            let v = value::coerce(def.parameter_type, v).map_err(|message| {
                PipelineError::Parameter {
                    name: name.clone(),
                    message,
                }
            })?;
            out.insert(name.clone(), v);
        }
        Ok(out)
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: Value, src: &str, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner == ".") {
            (true, true) => String::new(),
            (true, false) => inner,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        PipelineError::invalid(src, path, e.into_inner().to_string())
    })
}

/// How pipeline YAML is read. PyYAML (which the kfp compiler uses) writes
/// YAML 1.1 but quotes every string that 1.1 would read as a boolean; only
/// `true`/`false` are booleans: without strict booleans a parameter named
/// `n` or `y` would read as `false`/`true`. `no_schema` makes a string field
/// refuse an unquoted number or boolean, as the generic path does (only the
/// typed path reads into string fields directly). The parser's node and
/// event budgets scale with [`MAX_PIPELINE_BYTES`] instead of its defaults
/// (250,000 nodes: about 9,000 compiled tasks); its limits on aliases, the
/// defence against alias bombs, stay.
fn yaml_options(no_schema: bool) -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        no_schema: no_schema,
        budget: serde_saphyr::budget! {
            max_nodes: MAX_PIPELINE_BYTES,
            max_events: 2 * MAX_PIPELINE_BYTES,
        },
    }
}

/// Reads a pipeline straight into the typed structs when the text is a
/// bare PipelineSpec (JSON, or YAML with an optional PlatformSpec document
/// after it) of a supported schema version, which is what the kfp compiler
/// writes. A large pipeline then never exists as generic values, which cost
/// several times the typed form (≈ 6 KiB per task for small tasks).
///
/// `None` for anything else, and for anything malformed: the caller then
/// takes the general path, which accepts or refuses exactly as before and
/// names the field path in its errors. The two paths agree on what they
/// both accept (a property test holds them to it).
fn read_typed(text: &str) -> Option<(PipelineSpec, Option<PlatformSpec>)> {
    let (spec, platform) = if text.trim_start().starts_with('{')
        && let Ok(Doc::Spec(spec)) = serde_json::from_str::<Doc>(text)
    {
        (spec, None)
    } else {
        let docs: Vec<Doc> =
            serde_saphyr::from_multiple_with_options(text, yaml_options(true)).ok()?;
        let mut docs = docs.into_iter();
        match (docs.next(), docs.next(), docs.next()) {
            (Some(Doc::Spec(spec)), None, None) => (spec, None),
            (Some(Doc::Spec(spec)), Some(Doc::Platform(p)), None) => (spec, Some(p)),
            _ => return None,
        }
    };
    SUPPORTED_SCHEMA_VERSIONS
        .contains(&spec.schema_version.as_str())
        .then_some((*spec, platform))
}

/// One document of a pipeline file, told apart by its first key without
/// buffering it: `platforms` starts a PlatformSpec, anything else is read
/// as a PipelineSpec.
enum Doc {
    Spec(Box<PipelineSpec>),
    Platform(PlatformSpec),
}

impl<'de> serde::Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::{IntoDeserializer, MapAccess, Visitor};

        /// A map whose first key was already read.
        struct Rest<A> {
            first: Option<String>,
            map: A,
        }
        impl<'de, A: MapAccess<'de>> MapAccess<'de> for Rest<A> {
            type Error = A::Error;
            fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
                &mut self,
                seed: K,
            ) -> std::result::Result<Option<K::Value>, A::Error> {
                match self.first.take() {
                    Some(k) => seed.deserialize(k.into_deserializer()).map(Some),
                    None => self.map.next_key_seed(seed),
                }
            }
            fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
                &mut self,
                seed: V,
            ) -> std::result::Result<V::Value, A::Error> {
                self.map.next_value_seed(seed)
            }
        }

        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a PipelineSpec or PlatformSpec mapping")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Doc, A::Error> {
                let first: Option<String> = map.next_key()?;
                let platform = first.as_deref() == Some("platforms");
                let rest = MapAccessDeserializer::new(Rest { first, map });
                if platform {
                    PlatformSpec::deserialize(rest).map(Doc::Platform)
                } else {
                    PipelineSpec::deserialize(rest).map(|s| Doc::Spec(Box::new(s)))
                }
            }
        }
        d.deserialize_map(DocVisitor)
    }
}

struct Validator<'a> {
    spec: &'a PipelineSpec,
    src: &'a str,
}

impl Validator<'_> {
    fn err(&self, path: impl Into<String>, msg: impl Into<String>) -> PipelineError {
        PipelineError::invalid(self.src, path, msg)
    }

    fn validate(&self, k8s: &BTreeMap<String, KubernetesExecutorConfig>) -> Result<()> {
        if self.spec.root.dag.is_none() {
            return Err(self.err("root.dag", "the root component must be a DAG"));
        }
        self.component("root", &self.spec.root)?;
        for (name, c) in &self.spec.components {
            self.component(&format!("components.{name}"), c)?;
        }
        for (label, e) in &self.spec.deployment_spec.executors {
            let path = format!("deploymentSpec.executors.{label}");
            let kinds = [
                e.container.is_some(),
                e.importer.is_some(),
                e.resolver.is_some(),
                e.custom_job.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.err(
                    path,
                    "an executor needs exactly one of container, importer, resolver, customJob",
                ));
            }
            if e.resolver.is_some() || e.custom_job.is_some() {
                return Err(self.err(path, "resolver and customJob executors are Vertex AI features; Oxflow runs container and importer executors"));
            }
            if let Some(imp) = &e.importer
                && imp.artifact_uri.constant.is_none()
                && imp.artifact_uri.runtime_parameter.is_none()
            {
                return Err(self.err(
                    format!("{path}.importer.artifactUri"),
                    "needs constant or runtimeParameter",
                ));
            }
        }
        for label in k8s.keys() {
            if !self.spec.deployment_spec.executors.contains_key(label) {
                return Err(self.err(
                    format!("platformSpec.platforms.kubernetes.deploymentSpec.executors.{label}"),
                    "no executor with this label in deploymentSpec.executors",
                ));
            }
        }
        self.component_cycles()?;
        Ok(())
    }

    fn component(&self, path: &str, c: &ComponentSpec) -> Result<()> {
        match (&c.executor_label, &c.dag) {
            (Some(_), Some(_)) => return Err(self.err(path, "has both executorLabel and dag")),
            (None, None) => return Err(self.err(path, "needs executorLabel or dag")),
            (Some(label), None) => {
                if !self.spec.deployment_spec.executors.contains_key(label) {
                    return Err(self.err(
                        format!("{path}.executorLabel"),
                        format!("executor {label:?} is not defined in deploymentSpec.executors"),
                    ));
                }
            }
            (None, Some(_)) => {}
        }
        for (name, def) in &c.input_definitions.parameters {
            if let Some(d) = &def.default_value {
                value::coerce(def.parameter_type, d).map_err(|m| {
                    self.err(
                        format!("{path}.inputDefinitions.parameters.{name}.defaultValue"),
                        m,
                    )
                })?;
            }
        }
        let Some(dag) = &c.dag else { return Ok(()) };
        let dpath = format!("{path}.dag");
        for (tname, t) in &dag.tasks {
            let tpath = format!("{dpath}.tasks.{tname}");
            let Some(comp) = self.spec.components.get(&t.component_ref.name) else {
                return Err(self.err(
                    format!("{tpath}.componentRef.name"),
                    format!(
                        "component {:?} is not defined in components",
                        t.component_ref.name
                    ),
                ));
            };
            for (i, d) in t.dependent_tasks.iter().enumerate() {
                if !dag.tasks.contains_key(d) {
                    return Err(self.err(
                        format!("{tpath}.dependentTasks[{i}]"),
                        format!("no task {d:?} in this DAG"),
                    ));
                }
                if d == tname {
                    return Err(self.err(
                        format!("{tpath}.dependentTasks[{i}]"),
                        "a task cannot depend on itself",
                    ));
                }
            }
            for (pname, p) in &t.inputs.parameters {
                let ppath = format!("{tpath}.inputs.parameters.{pname}");
                let sources = [
                    p.component_input_parameter.is_some(),
                    p.task_output_parameter.is_some(),
                    p.runtime_value.is_some(),
                    p.task_final_status.is_some(),
                ];
                if sources.iter().filter(|s| **s).count() != 1 {
                    return Err(self.err(ppath, "needs exactly one of componentInputParameter, taskOutputParameter, runtimeValue, taskFinalStatus"));
                }
                if !comp.input_definitions.parameters.contains_key(pname) {
                    return Err(self.err(
                        &ppath,
                        format!(
                            "component {:?} has no input parameter {pname:?}",
                            t.component_ref.name
                        ),
                    ));
                }
                if let Some(ci) = &p.component_input_parameter
                    && !c.input_definitions.parameters.contains_key(ci)
                {
                    return Err(self.err(
                        format!("{ppath}.componentInputParameter"),
                        format!("the enclosing component has no input parameter {ci:?}"),
                    ));
                }
                if let Some(to) = &p.task_output_parameter {
                    let producer = dag.tasks.get(&to.producer_task).ok_or_else(|| {
                        self.err(
                            format!("{ppath}.taskOutputParameter.producerTask"),
                            format!("no task {:?} in this DAG", to.producer_task),
                        )
                    })?;
                    let pc = self.spec.components.get(&producer.component_ref.name);
                    if let Some(pc) = pc
                        && !pc
                            .output_definitions
                            .parameters
                            .contains_key(&to.output_parameter_key)
                    {
                        return Err(self.err(
                            format!("{ppath}.taskOutputParameter.outputParameterKey"),
                            format!(
                                "task {:?} has no output parameter {:?}",
                                to.producer_task, to.output_parameter_key
                            ),
                        ));
                    }
                }
                if let Some(fs) = &p.task_final_status
                    && !dag.tasks.contains_key(&fs.producer_task)
                {
                    return Err(self.err(
                        format!("{ppath}.taskFinalStatus.producerTask"),
                        format!("no task {:?} in this DAG", fs.producer_task),
                    ));
                }
                if let Some(sel) = &p.parameter_expression_selector {
                    cel::parse(sel)
                        .map_err(|m| self.err(format!("{ppath}.parameterExpressionSelector"), m))?;
                }
            }
            for (aname, a) in &t.inputs.artifacts {
                let apath = format!("{tpath}.inputs.artifacts.{aname}");
                if !comp.input_definitions.artifacts.contains_key(aname) {
                    return Err(self.err(
                        &apath,
                        format!(
                            "component {:?} has no input artifact {aname:?}",
                            t.component_ref.name
                        ),
                    ));
                }
                match (&a.task_output_artifact, &a.component_input_artifact) {
                    (Some(to), None) => {
                        let producer = dag.tasks.get(&to.producer_task).ok_or_else(|| {
                            self.err(
                                format!("{apath}.taskOutputArtifact.producerTask"),
                                format!("no task {:?} in this DAG", to.producer_task),
                            )
                        })?;
                        if let Some(pc) = self.spec.components.get(&producer.component_ref.name)
                            && !pc
                                .output_definitions
                                .artifacts
                                .contains_key(&to.output_artifact_key)
                        {
                            return Err(self.err(
                                format!("{apath}.taskOutputArtifact.outputArtifactKey"),
                                format!(
                                    "task {:?} has no output artifact {:?}",
                                    to.producer_task, to.output_artifact_key
                                ),
                            ));
                        }
                    }
                    (None, Some(ci)) => {
                        if !c.input_definitions.artifacts.contains_key(ci) {
                            return Err(self.err(
                                format!("{apath}.componentInputArtifact"),
                                format!("the enclosing component has no input artifact {ci:?}"),
                            ));
                        }
                    }
                    _ => {
                        return Err(self.err(
                            apath,
                            "needs exactly one of taskOutputArtifact, componentInputArtifact",
                        ));
                    }
                }
            }
            if let Some(cond) = t
                .trigger_policy
                .as_ref()
                .and_then(|tp| tp.condition.as_ref())
            {
                cel::parse(cond)
                    .map_err(|m| self.err(format!("{tpath}.triggerPolicy.condition"), m))?;
            }
            if let Some(it) = &t.parameter_iterator {
                if comp.dag.is_none() {
                    return Err(self.err(
                        format!("{tpath}.parameterIterator"),
                        "a loop must instantiate a DAG component",
                    ));
                }
                if !comp
                    .input_definitions
                    .parameters
                    .contains_key(&it.item_input)
                {
                    return Err(self.err(
                        format!("{tpath}.parameterIterator.itemInput"),
                        format!(
                            "component {:?} has no input parameter {:?}",
                            t.component_ref.name, it.item_input
                        ),
                    ));
                }
                match (&it.items.raw, &it.items.input_parameter) {
                    (Some(raw), None) => match serde_json::from_str::<Value>(raw) {
                        Ok(Value::Array(_)) => {}
                        _ => {
                            return Err(self.err(
                                format!("{tpath}.parameterIterator.items.raw"),
                                "must be the JSON text of a list",
                            ));
                        }
                    },
                    (None, Some(ip)) => {
                        if !t.inputs.parameters.contains_key(ip) {
                            return Err(self.err(
                                format!("{tpath}.parameterIterator.items.inputParameter"),
                                format!("the task has no input parameter {ip:?}"),
                            ));
                        }
                    }
                    _ => {
                        return Err(self.err(
                            format!("{tpath}.parameterIterator.items"),
                            "needs exactly one of raw, inputParameter",
                        ));
                    }
                }
            }
            if let Some(it) = &t.artifact_iterator
                && !t.inputs.artifacts.contains_key(&it.items.input_artifact)
            {
                return Err(self.err(
                    format!("{tpath}.artifactIterator.items.inputArtifact"),
                    format!(
                        "the task has no input artifact {:?}",
                        it.items.input_artifact
                    ),
                ));
            }
            if let Some(rp) = &t.retry_policy {
                for (field, d) in [
                    ("backoffDuration", &rp.backoff_duration),
                    ("backoffMaxDuration", &rp.backoff_max_duration),
                ] {
                    if let Some(d) = d
                        && crate::engine::parse_duration(d).is_none()
                    {
                        return Err(self.err(
                            format!("{tpath}.retryPolicy.{field}"),
                            format!("{d:?} is not a duration like \"1s\" or \"1.5s\""),
                        ));
                    }
                }
                if rp.max_retry_count < 0 {
                    return Err(self.err(
                        format!("{tpath}.retryPolicy.maxRetryCount"),
                        "must not be negative",
                    ));
                }
            }
        }
        // Outputs refer to tasks of this DAG.
        for (oname, o) in &dag.outputs.parameters {
            let opath = format!("{dpath}.outputs.parameters.{oname}");
            let sels: Vec<&str> = match (&o.value_from_parameter, &o.value_from_oneof) {
                (Some(s), None) => vec![s.producer_subtask.as_str()],
                (None, Some(one)) => one
                    .parameter_selectors
                    .iter()
                    .map(|s| s.producer_subtask.as_str())
                    .collect(),
                _ => {
                    return Err(self.err(
                        opath,
                        "needs exactly one of valueFromParameter, valueFromOneof",
                    ));
                }
            };
            for s in sels {
                if !dag.tasks.contains_key(s) {
                    return Err(self.err(&opath, format!("no task {s:?} in this DAG")));
                }
            }
        }
        for (oname, o) in &dag.outputs.artifacts {
            for s in &o.artifact_selectors {
                if !dag.tasks.contains_key(&s.producer_subtask) {
                    return Err(self.err(
                        format!("{dpath}.outputs.artifacts.{oname}"),
                        format!("no task {:?} in this DAG", s.producer_subtask),
                    ));
                }
            }
        }
        self.task_cycles(&dpath, c)?;
        // Root parameters must have types we can carry.
        if path == "root" {
            for (name, def) in &c.input_definitions.parameters {
                if matches!(def.parameter_type, ParameterType::TaskFinalStatus) {
                    return Err(self.err(
                        format!("root.inputDefinitions.parameters.{name}"),
                        "a pipeline parameter cannot be a task final status",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Dependencies between sibling tasks must form a DAG.
    fn task_cycles(&self, dpath: &str, c: &ComponentSpec) -> Result<()> {
        let Some(dag) = &c.dag else { return Ok(()) };
        let graph = DagGraph::new(dag);
        // Kahn's algorithm (linear in the DAG's size); whatever is left
        // over sits on a cycle.
        let mut indeg: Vec<usize> = (0..graph.len()).map(|t| graph.upstream(t).len()).collect();
        let mut ready: Vec<usize> = (0..graph.len()).filter(|t| indeg[*t] == 0).collect();
        let mut done = 0;
        while let Some(t) = ready.pop() {
            done += 1;
            for &other in graph.downstream(t) {
                let e = &mut indeg[other as usize];
                *e -= 1;
                if *e == 0 {
                    ready.push(other as usize);
                }
            }
        }
        if done < dag.tasks.len() {
            let stuck: Vec<&str> = (0..graph.len())
                .filter(|t| indeg[*t] > 0)
                .map(|t| dag.tasks.at(t).0.as_str())
                .collect();
            return Err(self.err(
                format!("{dpath}.tasks"),
                format!("dependency cycle among tasks: {}", stuck.join(", ")),
            ));
        }
        Ok(())
    }

    /// A component must not contain itself (directly or through others).
    fn component_cycles(&self) -> Result<()> {
        fn visit<'a>(
            spec: &'a PipelineSpec,
            name: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> std::result::Result<(), Vec<String>> {
            if done.contains(name) {
                return Ok(());
            }
            if stack.contains(&name) {
                let mut cyc: Vec<String> = stack.iter().map(|s| s.to_string()).collect();
                cyc.push(name.to_owned());
                return Err(cyc);
            }
            stack.push(name);
            if let Some(dag) = spec.components.get(name).and_then(|c| c.dag.as_ref()) {
                for t in dag.tasks.values() {
                    visit(spec, &t.component_ref.name, stack, done)?;
                }
            }
            stack.pop();
            done.insert(name);
            Ok(())
        }
        let mut done = BTreeSet::new();
        for name in self.spec.components.keys() {
            visit(self.spec, name, &mut Vec::new(), &mut done).map_err(|cyc| {
                self.err(
                    format!("components.{name}"),
                    format!("component cycle: {}", cyc.join(" -> ")),
                )
            })?;
        }
        Ok(())
    }
}

/// The dependencies among a DAG's tasks, by task index (a task's position
/// in `dag.tasks`, which is name order): for each task, the siblings it
/// waits for (`dependentTasks` plus every producer its inputs name) and the
/// siblings that wait for it, each list sorted. Held as two flat arrays with
/// offsets: a few bytes per task and edge, where maps of name sets cost
/// hundreds of bytes per task in a 10,000-task DAG.
#[derive(Debug, Default)]
pub(crate) struct DagGraph {
    up_start: Vec<u32>,
    up: Vec<u32>,
    down_start: Vec<u32>,
    down: Vec<u32>,
}

impl DagGraph {
    /// The graph of `dag`. Names of tasks that are not in the DAG (and a
    /// task naming itself) are left out: the validator reports those.
    pub(crate) fn new(dag: &crate::ir::DagSpec) -> Self {
        let n = dag.tasks.len();
        let mut g = DagGraph {
            up_start: Vec::with_capacity(n + 1),
            ..Default::default()
        };
        g.up_start.push(0);
        let mut mine: Vec<u32> = Vec::new();
        for (i, (_, t)) in dag.tasks.iter().enumerate() {
            mine.clear();
            let params = t.inputs.parameters.values().flat_map(|p| {
                let out = p.task_output_parameter.as_ref().map(|to| &to.producer_task);
                let fin = p.task_final_status.as_ref().map(|fs| &fs.producer_task);
                out.into_iter().chain(fin)
            });
            let arts = t
                .inputs
                .artifacts
                .values()
                .filter_map(|a| a.task_output_artifact.as_ref().map(|to| &to.producer_task));
            for name in t.dependent_tasks.iter().chain(params).chain(arts) {
                if let Some(j) = dag.tasks.index_of(name)
                    && j != i
                {
                    mine.push(j as u32);
                }
            }
            mine.sort_unstable();
            mine.dedup();
            g.up.extend_from_slice(&mine);
            g.up_start.push(g.up.len() as u32);
        }
        g.up.shrink_to_fit();
        // The reverse edges, by counting: each task's dependents in index order.
        let mut count = vec![0u32; n + 1];
        for &u in &g.up {
            count[u as usize + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        let mut down = vec![0; g.up.len()];
        let mut next = count.clone();
        for d in 0..n {
            for &u in g.upstream(d) {
                let slot = &mut next[u as usize];
                down[*slot as usize] = d as u32;
                *slot += 1;
            }
        }
        g.down = down;
        g.down_start = count;
        g
    }

    /// Number of tasks.
    pub(crate) fn len(&self) -> usize {
        self.up_start.len().saturating_sub(1)
    }

    /// The tasks `task` waits for, in index order.
    pub(crate) fn upstream(&self, task: usize) -> &[u32] {
        &self.up[self.up_start[task] as usize..self.up_start[task + 1] as usize]
    }

    /// The tasks that wait for `task`, in index order.
    pub(crate) fn downstream(&self, task: usize) -> &[u32] {
        &self.down[self.down_start[task] as usize..self.down_start[task + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small valid pipeline: `train` consumes `prep`'s output.
    fn spec() -> Value {
        json!({
            "pipelineInfo": {"name": "demo"},
            "schemaVersion": "2.1.0",
            "sdkVersion": "kfp-2.17.3",
            "components": {
                "comp-prep": {
                    "executorLabel": "exec-prep",
                    "inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}},
                    "outputDefinitions": {"parameters": {"Output": {"parameterType": "NUMBER_INTEGER"}}}
                },
                "comp-train": {
                    "executorLabel": "exec-train",
                    "inputDefinitions": {"parameters": {"lr": {"parameterType": "NUMBER_DOUBLE"}, "n": {"parameterType": "NUMBER_INTEGER"}}}
                }
            },
            "deploymentSpec": {"executors": {
                "exec-prep": {"container": {"image": "python:3.11", "command": ["echo"], "args": ["{{$.inputs.parameters['n']}}"]}},
                "exec-train": {"container": {"image": "python:3.11", "command": ["echo"]}}
            }},
            "root": {
                "dag": {"tasks": {
                    "prep": {
                        "taskInfo": {"name": "prep"}, "componentRef": {"name": "comp-prep"},
                        "inputs": {"parameters": {"n": {"componentInputParameter": "n"}}}
                    },
                    "train": {
                        "taskInfo": {"name": "train"}, "componentRef": {"name": "comp-train"},
                        "dependentTasks": ["prep"],
                        "inputs": {"parameters": {
                            "lr": {"componentInputParameter": "lr"},
                            "n": {"taskOutputParameter": {"producerTask": "prep", "outputParameterKey": "Output"}}
                        }}
                    }
                }},
                "inputDefinitions": {"parameters": {
                    "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0},
                    "lr": {"parameterType": "NUMBER_DOUBLE"}
                }}
            }
        })
    }

    /// [`spec`] with the per-task parts it lacks: caching, a condition,
    /// retries, a loop over a sub-DAG, resources and env.
    fn rich_spec() -> Value {
        let mut v = spec();
        let train = &mut v["root"]["dag"]["tasks"]["train"];
        train["cachingOptions"] = json!({"enableCache": true, "cacheKey": "k"});
        train["triggerPolicy"] = json!({"condition": "inputs.parameter_values['n'] > 1"});
        train["retryPolicy"] =
            json!({"maxRetryCount": 2, "backoffDuration": "1s", "backoffFactor": 2.0});
        v["root"]["dag"]["tasks"]["loop"] = json!({
            "taskInfo": {"name": "loop"}, "componentRef": {"name": "comp-loop"},
            "parameterIterator": {"itemInput": "item", "items": {"raw": "[1, 2]"}},
            "iteratorPolicy": {"parallelismLimit": 2}
        });
        v["components"]["comp-loop"] = json!({
            "dag": {"tasks": {"inner": {
                "taskInfo": {"name": "inner"}, "componentRef": {"name": "comp-prep"},
                "inputs": {"parameters": {"n": {"componentInputParameter": "item"}}}
            }}},
            "inputDefinitions": {"parameters": {"item": {"parameterType": "NUMBER_INTEGER"}}}
        });
        v["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"] =
            json!({"cpuLimit": 1.0, "resourceMemoryLimit": "1Gi"});
        v["deploymentSpec"]["executors"]["exec-train"]["container"]["env"] =
            json!([{"name": "A", "value": "b"}]);
        v
    }

    #[test]
    fn dag_graph_indexes_sibling_dependencies() {
        let dag: crate::ir::DagSpec = serde_json::from_value(json!({"tasks": {
            "a": {"componentRef": {"name": "c"}},
            "b": {"componentRef": {"name": "c"}, "dependentTasks": ["a", "a", "b", "nope"]},
            "c": {"componentRef": {"name": "c"}, "inputs": {
                "parameters": {
                    "x": {"taskOutputParameter": {"producerTask": "b", "outputParameterKey": "o"}},
                    "s": {"taskFinalStatus": {"producerTask": "a"}}
                },
                "artifacts": {"y": {"taskOutputArtifact": {"producerTask": "b", "outputArtifactKey": "o"}}}
            }},
            "d": {"componentRef": {"name": "c"}}
        }}))
        .unwrap();
        let g = DagGraph::new(&dag);
        assert_eq!(g.len(), 4);
        let up: Vec<&[u32]> = (0..4).map(|t| g.upstream(t)).collect();
        let down: Vec<&[u32]> = (0..4).map(|t| g.downstream(t)).collect();
        // Itself and unknown names are left out; each producer counts once.
        assert_eq!(up, [&[][..], &[0], &[0, 1], &[]]);
        assert_eq!(down, [&[1, 2][..], &[2], &[], &[]]);
    }

    #[test]
    fn compiled_specs_are_read_straight_into_the_typed_structs() {
        let v = rich_spec();
        let platform = json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-train": {"nodeSelector": {"labels": {"a": "b"}}}}}}}});
        for text in [
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
            serde_saphyr::to_string(&v).unwrap(),
        ] {
            let (spec, p) = read_typed(&text).expect("read without generic values");
            assert!(p.is_none());
            let general = Pipeline::load_str_via_values(&text, "t").unwrap();
            assert_eq!(
                serde_json::to_value(&spec).unwrap(),
                serde_json::to_value(&general.spec).unwrap()
            );
        }
        let two = format!(
            "{}---\n{}",
            serde_saphyr::to_string(&v).unwrap(),
            serde_saphyr::to_string(&platform).unwrap()
        );
        let (_, p) = read_typed(&two).expect("two documents");
        assert!(p.unwrap().platforms.contains_key("kubernetes"));
        // Left to the general path: the API's wrapper, other schema versions.
        let wrapped = json!({"pipeline_spec": v, "platform_spec": platform});
        assert!(read_typed(&wrapped.to_string()).is_none());
        let mut old = rich_spec();
        old["schemaVersion"] = json!("1.0.0");
        assert!(read_typed(&old.to_string()).is_none());
    }

    #[test]
    fn kfp_compiled_yaml_is_read_straight_into_the_typed_structs() {
        // As the kfp compiler writes it (PyYAML: a comment first, sorted
        // keys, strings quoted where YAML would read something else).
        let yaml = r#"# PIPELINE DEFINITION
# Name: chain-2
components:
  comp-true:
    executorLabel: exec-true
    inputDefinitions:
      parameters:
        i:
          parameterType: NUMBER_INTEGER
deploymentSpec:
  executors:
    exec-true:
      container:
        args:
        - '{{$.inputs.parameters[''i'']}}'
        command:
        - 'true'
        image: alpine
pipelineInfo:
  name: chain-2
root:
  dag:
    tasks:
      true-0:
        cachingOptions:
          enableCache: true
        componentRef:
          name: comp-true
        inputs:
          parameters:
            i:
              runtimeValue:
                constant: 0
        taskInfo:
          name: true-0
      true-1:
        cachingOptions: {}
        componentRef:
          name: comp-true
        dependentTasks:
        - true-0
        inputs:
          parameters:
            i:
              runtimeValue:
                constant: 1
        taskInfo:
          name: true-1
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"#;
        let (spec, _) = read_typed(yaml).expect("read without generic values");
        let general = Pipeline::load_str_via_values(yaml, "t").unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::to_value(&general.spec).unwrap()
        );
        let c = spec.deployment_spec.executors["exec-true"]
            .container
            .as_ref();
        assert_eq!(c.unwrap().command, ["true"]);
    }

    #[test]
    fn a_yaml_pipeline_of_twelve_thousand_tasks_loads() {
        // More nodes than the YAML parser's default budget (250,000).
        let mut yaml = String::from(
            "components:\n  comp-true:\n    executorLabel: exec-true\n    inputDefinitions:\n      parameters:\n        i:\n          parameterType: NUMBER_INTEGER\n\
             deploymentSpec:\n  executors:\n    exec-true:\n      container:\n        command:\n        - 'true'\n        image: alpine\n\
             pipelineInfo:\n  name: big\nschemaVersion: 2.1.0\nroot:\n  dag:\n    tasks:\n",
        );
        for i in 0..12_000 {
            yaml.push_str(&format!(
                "      t-{i}:\n        cachingOptions:\n          enableCache: true\n        componentRef:\n          name: comp-true\n        inputs:\n          parameters:\n            i:\n              runtimeValue:\n                constant: {i}\n        taskInfo:\n          name: t-{i}\n"
            ));
        }
        let (spec, _) = read_typed(&yaml).expect("read straight into the typed structs");
        assert_eq!(spec.root.dag.as_ref().unwrap().tasks.len(), 12_000);
        let general = Pipeline::load_str_via_values(&yaml, "big.yaml").unwrap();
        assert_eq!(general.spec.root.dag.unwrap().tasks.len(), 12_000);
    }

    #[test]
    fn rich_spec_loads() {
        let p = load(rich_spec()).unwrap();
        let tasks = &p.spec.root.dag.as_ref().unwrap().tasks;
        assert_eq!(tasks.keys().collect::<Vec<_>>(), ["loop", "prep", "train"]);
        assert_eq!(
            tasks["train"]
                .retry_policy
                .as_ref()
                .unwrap()
                .max_retry_count,
            2
        );
    }

    fn load(v: Value) -> Result<Pipeline> {
        Pipeline::load_str(&serde_json::to_string(&v).unwrap(), "test.json")
    }

    /// Applies `edit` to the valid spec and expects an error at `path` mentioning `msg`.
    fn check_invalid(edit: impl FnOnce(&mut Value), path: &str, msg: &str) {
        let mut v = spec();
        edit(&mut v);
        match load(v) {
            Err(PipelineError::Invalid {
                path: p, message, ..
            }) => {
                assert_eq!(p, path, "message: {message}");
                assert!(message.contains(msg), "{message:?} should mention {msg:?}");
            }
            other => panic!("expected an error at {path}, got {other:?}"),
        }
    }

    #[test]
    fn the_valid_spec_loads() {
        let p = load(spec()).unwrap();
        assert_eq!(p.spec.root.dag.as_ref().unwrap().tasks.len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        check_invalid(
            |v| v["schemaVersion"] = json!("3.0.0"),
            "schemaVersion",
            "unsupported schema version",
        );
        check_invalid(
            |v| {
                v.as_object_mut().unwrap().remove("schemaVersion");
            },
            "schemaVersion",
            "missing",
        );
        check_invalid(
            |v| {
                v.as_object_mut().unwrap().remove("root");
            },
            "",
            "missing field `root`",
        );
        check_invalid(
            |v| {
                v["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["lr"] =
                    json!({"componentInputParameter": 5})
            },
            "root.dag.tasks.train.inputs.parameters.lr.componentInputParameter",
            "invalid type",
        );
        check_invalid(
            |v| {
                v["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["lr"] =
                    json!({"componentInputParameter": "nope"})
            },
            "root.dag.tasks.train.inputs.parameters.lr.componentInputParameter",
            "no input parameter \"nope\"",
        );
        check_invalid(
            |v| v["root"]["dag"]["tasks"]["train"]["componentRef"]["name"] = json!("comp-missing"),
            "root.dag.tasks.train.componentRef.name",
            "not defined",
        );
        check_invalid(
            |v| v["root"]["dag"]["tasks"]["train"]["dependentTasks"] = json!(["ghost"]),
            "root.dag.tasks.train.dependentTasks[0]",
            "no task \"ghost\"",
        );
        check_invalid(
            |v| {
                v["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["n"]["taskOutputParameter"]
                    ["outputParameterKey"] = json!("nope")
            },
            "root.dag.tasks.train.inputs.parameters.n.taskOutputParameter.outputParameterKey",
            "no output parameter",
        );
        check_invalid(
            |v| v["root"]["dag"]["tasks"]["prep"]["dependentTasks"] = json!(["train"]),
            "root.dag.tasks",
            "dependency cycle among tasks: prep, train",
        );
        check_invalid(
            |v| v["components"]["comp-prep"]["executorLabel"] = json!("exec-gone"),
            "components.comp-prep.executorLabel",
            "not defined",
        );
        check_invalid(
            |v| {
                v["root"]["dag"]["tasks"]["train"]["triggerPolicy"] =
                    json!({"condition": "inputs.parameter_values['x'] =="})
            },
            "root.dag.tasks.train.triggerPolicy.condition",
            "unexpected end",
        );
        check_invalid(
            |v| v["deploymentSpec"]["executors"]["exec-train"] = json!({"resolver": {}}),
            "deploymentSpec.executors.exec-train",
            "Vertex",
        );
        check_invalid(
            |v| v["root"]["inputDefinitions"]["parameters"]["n"]["defaultValue"] = json!("many"),
            "root.inputDefinitions.parameters.n.defaultValue",
            "expected an integer",
        );
        check_invalid(
            |v| {
                v["root"]["dag"]["tasks"]["train"]["retryPolicy"] =
                    json!({"maxRetryCount": 2, "backoffDuration": "soon"})
            },
            "root.dag.tasks.train.retryPolicy.backoffDuration",
            "not a duration",
        );
    }

    #[test]
    fn a_component_cannot_contain_itself() {
        let mut v = spec();
        v["components"]["comp-loop"] =
            json!({"dag": {"tasks": {"again": {"componentRef": {"name": "comp-loop"}}}}});
        match load(v) {
            Err(PipelineError::Invalid { path, message, .. }) => {
                assert_eq!(path, "components.comp-loop");
                assert!(message.contains("comp-loop -> comp-loop"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = Pipeline::load_str("root: [unclosed\n  x: 1\n", "bad.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bad.yaml: not valid YAML"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
        let e = Pipeline::load_str("", "empty.yaml").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = Pipeline::load_str("- 1\n- 2\n", "list.yaml").unwrap_err();
        assert!(
            e.to_string().contains("expected a PipelineSpec mapping"),
            "{e}"
        );
    }

    #[test]
    fn yaml_one_letter_names_stay_strings() {
        // PyYAML writes `n` unquoted; it is a string, not YAML 1.1's `false`.
        let yaml = "pipelineInfo: {name: y}\nschemaVersion: 2.1.0\nroot:\n  dag: {tasks: {}}\n  inputDefinitions:\n    parameters:\n      n: {parameterType: STRING, defaultValue: n}\n";
        let p = Pipeline::load_str(yaml, "t.yaml").unwrap();
        assert_eq!(p.spec.pipeline_info.name, "y");
        let bound = p.bind_parameters(&BTreeMap::new()).unwrap();
        assert_eq!(bound["n"], json!("n"));
    }

    #[test]
    fn parameters_are_checked_and_defaulted() {
        let p = load(spec()).unwrap();
        let given = |pairs: &[(&str, Value)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let b = p.bind_parameters(&given(&[("lr", json!("0.1"))])).unwrap();
        assert_eq!(b["lr"], json!(0.1));
        assert_eq!(b["n"], json!(3));
        let e = p.bind_parameters(&BTreeMap::new()).unwrap_err().to_string();
        assert!(
            e.contains("\"lr\"") && e.contains("required parameter is missing"),
            "{e}"
        );
        let e = p
            .bind_parameters(&given(&[("lr", json!("fast"))]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("root.inputDefinitions.parameters.lr") && e.contains("expected a number"),
            "{e}"
        );
        let e = p
            .bind_parameters(&given(&[("lr", json!(1)), ("epochs", json!(1))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such parameter (it has: lr, n)"), "{e}");
        let e = p
            .bind_parameters(&given(&[("lr", json!(1)), ("n", json!("2.5"))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected an integer"), "{e}");
    }

    #[test]
    fn platform_spec_is_read_from_the_second_document() {
        let doc1 = serde_json::to_string(&spec()).unwrap();
        let doc2 = r#"{"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-train": {"secretAsEnv": [{"secretName": "s", "keyToEnv": [{"secretKey": "k", "envVar": "K"}]}], "nodeSelector": {"labels": {"a": "b"}}}}}}}}"#;
        let p = Pipeline::load_str(&format!("{doc1}\n---\n{doc2}\n"), "two.yaml").unwrap();
        let k = &p.kubernetes["exec-train"];
        assert_eq!(k.secret_as_env[0].key_to_env[0].env_var, "K");
        assert!(k.other.contains_key("nodeSelector"));
        let bad = r#"{"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-nope": {}}}}}}"#;
        let e = Pipeline::load_str(&format!("{doc1}\n---\n{bad}\n"), "two.yaml").unwrap_err();
        assert!(
            e.to_string()
                .contains("platformSpec.platforms.kubernetes.deploymentSpec.executors.exec-nope"),
            "{e}"
        );
        // The API's wrapper form carries the same.
        let wrapped = json!({"pipeline_spec": spec(), "platform_spec": serde_json::from_str::<Value>(doc2).unwrap()});
        let p = Pipeline::from_json(wrapped, "api").unwrap();
        assert!(p.kubernetes.contains_key("exec-train"));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Random JSON values, to splice into a valid spec.
        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                "[a-z{}$'\\[\\]._ -]{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Every object path in a JSON value.
        fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
            if let Value::Object(m) = v {
                for (k, c) in m {
                    let mut p = prefix.clone();
                    p.push(k.clone());
                    out.push(p.clone());
                    paths(c, p, out);
                }
            }
        }

        /// [`rich_spec`] with the field at one of its paths replaced by `junk`.
        fn mutated(pick: prop::sample::Index, junk: Value) -> Value {
            let mut v = rich_spec();
            let mut all = Vec::new();
            paths(&v, vec![], &mut all);
            let path = &all[pick.index(all.len())];
            let mut cur = &mut v;
            for k in &path[..path.len() - 1] {
                cur = &mut cur[k.as_str()];
            }
            cur[path[path.len() - 1].as_str()] = junk;
            v
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Replacing any field of a valid spec with random JSON never panics,
            /// and an accepted spec can be bound and re-serialised.
            #[test]
            fn mutated_specs_never_panic(pick in any::<prop::sample::Index>(), junk in arb_json()) {
                let v = mutated(pick, junk);
                if let Ok(p) = load(v) {
                    let _ = p.bind_parameters(&BTreeMap::new());
                    let again = Pipeline::from_json(p.to_stored_json(), "again");
                    prop_assert!(again.is_ok(), "re-loading a stored spec failed: {:?}", again.err());
                    let text = p.to_stored_json().to_string();
                    prop_assert_eq!(&p.to_stored_text(), &text, "to_stored_text writes what to_stored_json holds");
                    let typed = Pipeline::from_stored_text(&text, "stored");
                    prop_assert!(typed.is_ok(), "reading stored text failed: {:?}", typed.err());
                    prop_assert_eq!(
                        typed.unwrap().to_stored_json(),
                        p.to_stored_json(),
                        "the text path reads what the JSON path reads"
                    );
                }
            }

            /// Reading text straight into the typed structs accepts what the
            /// general path accepts, reads it the same, and refuses the rest:
            /// as compact JSON, pretty JSON and YAML.
            #[test]
            fn typed_and_general_paths_agree(pick in any::<prop::sample::Index>(), junk in arb_json()) {
                let v = mutated(pick, junk);
                let texts = [
                    serde_json::to_string(&v).unwrap(),
                    serde_json::to_string_pretty(&v).unwrap(),
                    serde_saphyr::to_string(&v).unwrap(),
                ];
                for text in texts {
                    let fast = Pipeline::load_str(&text, "t");
                    let general = Pipeline::load_str_via_values(&text, "t");
                    match (fast, general) {
                        (Ok(a), Ok(b)) => prop_assert_eq!(a.to_stored_json(), b.to_stored_json()),
                        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                        (a, b) => prop_assert!(false, "{text}\ntyped: {a:?}\ngeneral: {b:?}"),
                    }
                }
            }

            /// Arbitrary text never panics the loader.
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = Pipeline::load_str(&text, "fuzz.yaml");
            }

            /// Arbitrary YAML-ish structure never panics the loader.
            #[test]
            fn arbitrary_documents_never_panic(doc in arb_json()) {
                let _ = Pipeline::from_json(doc, "fuzz.json");
            }
        }
    }
}
