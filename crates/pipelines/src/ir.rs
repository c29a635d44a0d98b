//! The KFP v2 pipeline IR (`PipelineSpec` 2.1.0 and the `kfp-kubernetes`
//! `PlatformSpec`) as typed Rust. Field names follow protobuf JSON
//! (lowerCamelCase), exactly as `kfp.compiler.Compiler` writes them.
//!
//! Unknown fields are accepted and ignored (newer SDKs add fields); missing
//! required ones fail with the field path.
//!
//! What a pipeline has one of per task is kept compact, because a DAG may
//! have tens of thousands of tasks and the engine holds the spec for the
//! whole run: a DAG's tasks and each task's inputs are [`NameMap`]s (sorted
//! vectors) rather than `BTreeMap`s, and a task's rarely set parts are boxed.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A map from names to values, held as one boxed slice sorted by name.
///
/// It reads like a `BTreeMap<String, V>` (name order, lookups by `&str`)
/// but costs only its entries: a `BTreeMap` allocates an 11-slot node even
/// for one entry (about 2.4 KiB for a task's one input parameter) and
/// leaves nodes half full when filled in order, and a pipeline has one such
/// map per task. Built once, when the spec is read; never changed after.
/// A name given twice keeps its last value, as a `BTreeMap` would.
#[derive(Debug, Clone, PartialEq)]
pub struct NameMap<V> {
    entries: Box<[(String, V)]>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        Self {
            entries: Box::default(),
        }
    }
}

fn pair<V>(e: &(String, V)) -> (&String, &V) {
    (&e.0, &e.1)
}

/// Iterator over a [`NameMap`]'s entries, in name order.
pub type NameMapIter<'a, V> =
    std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

impl<V> NameMap<V> {
    /// Entries from a vector in any order.
    pub fn from_vec(mut entries: Vec<(String, V)>) -> Self {
        // Stable, so that among equal names the last one given is last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                std::mem::swap(&mut later.1, &mut kept.1);
                true
            } else {
                false
            }
        });
        Self {
            entries: entries.into_boxed_slice(),
        }
    }

    /// The position of `name` in name order: the index that [`NameMap::at`] takes.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
    }

    /// The entry at a position in name order.
    pub fn at(&self, index: usize) -> (&String, &V) {
        pair(&self.entries[index])
    }

    /// The value for `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.index_of(name).map(|i| &self.entries[i].1)
    }

    /// The stored name and the value for `name`.
    pub fn get_key_value(&self, name: &str) -> Option<(&String, &V)> {
        self.index_of(name).map(|i| pair(&self.entries[i]))
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in name order.
    pub fn iter(&self) -> NameMapIter<'_, V> {
        self.entries
            .iter()
            .map(pair as fn(&(String, V)) -> (&String, &V))
    }

    /// Names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<V> FromIterator<(String, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self::from_vec(iter.into_iter().collect())
    }
}

impl<'a, V> IntoIterator for &'a NameMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = NameMapIter<'a, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> std::ops::Index<&str> for NameMap<V> {
    type Output = V;
    /// Panics when `name` is absent, as `BTreeMap`'s index does.
    fn index(&self, name: &str) -> &V {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry {name:?} in the map"),
        }
    }
}

impl<V: Serialize> Serialize for NameMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NameMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = NameMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(NameMap::from_vec(entries))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A compiled pipeline (`ml_pipelines.PipelineSpec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Name and description.
    pub pipeline_info: PipelineInfo,
    /// `kfp-2.17.3`.
    #[serde(default)]
    pub sdk_version: String,
    /// `2.1.0`.
    pub schema_version: String,
    /// Every component the DAGs reference, by name.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    /// How each leaf component executes.
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    /// The pipeline's own component: always a DAG.
    pub root: ComponentSpec,
    /// Where artifacts go by default (ignored by the local store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pipeline_root: Option<String>,
}

/// `pipelineInfo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    /// The pipeline's name (`@dsl.pipeline(name=…)`).
    pub name: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A display name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A component: a leaf (with an executor) or a graph (with a DAG).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Inputs.
    #[serde(default)]
    pub input_definitions: Interface,
    /// Outputs.
    #[serde(default)]
    pub output_definitions: Interface,
    /// Leaf: the key into `deploymentSpec.executors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_label: Option<String>,
    /// Graph: the tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagSpec>,
}

/// Input or output definitions of a component.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Parameters by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterDef>,
    /// Artifacts by name.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactDef>,
}

/// The type of a parameter. Every value travels as a protobuf `Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    /// Never written by the SDK; kept so unknown specs parse.
    ParameterTypeEnumUnspecified,
    /// `int` (stored as a double in the IR).
    NumberInteger,
    /// `float`.
    NumberDouble,
    /// `str`.
    String,
    /// `bool`.
    Boolean,
    /// `list`.
    List,
    /// `dict`.
    Struct,
    /// `dsl.PipelineTaskFinalStatus` (exit handlers).
    TaskFinalStatus,
    /// `dsl.TaskConfig` (2.1x).
    TaskConfig,
}

/// A parameter definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDef {
    /// Its type.
    pub parameter_type: ParameterType,
    /// The default, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    /// Whether it may be left unset.
    #[serde(default)]
    pub is_optional: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An artifact definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDef {
    /// `system.Dataset`, …
    pub artifact_type: ArtifactType,
    /// `Input[List[Dataset]]` / collected outputs.
    #[serde(default)]
    pub is_artifact_list: bool,
    /// Whether it may be left unset.
    #[serde(default)]
    pub is_optional: bool,
}

/// `{schemaTitle, schemaVersion}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactType {
    /// `system.Model`, …
    #[serde(default)]
    pub schema_title: String,
    /// `0.0.1`.
    #[serde(default)]
    pub schema_version: String,
}

/// A DAG: tasks and how its outputs are selected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagSpec {
    /// Tasks by name.
    #[serde(default)]
    pub tasks: NameMap<TaskSpec>,
    /// Output selectors.
    #[serde(default)]
    pub outputs: DagOutputs,
}

/// A task in a DAG.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Display name.
    #[serde(default)]
    pub task_info: TaskInfo,
    /// The component it instantiates.
    pub component_ref: ComponentRef,
    /// Sibling tasks that must finish first.
    #[serde(default)]
    pub dependent_tasks: Box<[String]>,
    /// Input wiring.
    #[serde(default)]
    pub inputs: TaskInputs,
    /// Cache settings (`{}` means caching off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_options: Option<CachingOptions>,
    /// Condition and upstream strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_policy: Option<Box<TriggerPolicy>>,
    /// ParallelFor over parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_iterator: Option<Box<ParameterIterator>>,
    /// ParallelFor over artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_iterator: Option<Box<ArtifactIterator>>,
    /// ParallelFor parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterator_policy: Option<IteratorPolicy>,
    /// `set_retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<Box<RetryPolicy>>,
}

/// `taskInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// `componentRef`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentRef {
    /// Key into `components`.
    pub name: String,
}

/// Task input wiring.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskInputs {
    /// Parameters by the component's input name.
    #[serde(default)]
    pub parameters: NameMap<InputParameterSpec>,
    /// Artifacts by the component's input name.
    #[serde(default)]
    pub artifacts: NameMap<InputArtifactSpec>,
}

/// Where one input parameter comes from (exactly one source is set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputParameterSpec {
    /// An input of the enclosing component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_input_parameter: Option<String>,
    /// An output of a sibling task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_output_parameter: Option<TaskOutputParameter>,
    /// A constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_value: Option<RuntimeValue>,
    /// The final status of a sibling (exit handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_final_status: Option<TaskFinalStatusRef>,
    /// A CEL expression applied to the value (`parseJson(string_value)["a"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_expression_selector: Option<String>,
}

/// `taskOutputParameter`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputParameter {
    /// The sibling task.
    pub producer_task: String,
    /// Its output name.
    pub output_parameter_key: String,
}

/// `runtimeValue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeValue {
    /// The constant.
    #[serde(default)]
    pub constant: Value,
}

/// `taskFinalStatus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFinalStatusRef {
    /// The guarded sibling.
    pub producer_task: String,
}

/// Where one input artifact comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputArtifactSpec {
    /// An output artifact of a sibling task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_output_artifact: Option<TaskOutputArtifact>,
    /// An input artifact of the enclosing component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_input_artifact: Option<String>,
}

/// `taskOutputArtifact`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputArtifact {
    /// The sibling task.
    pub producer_task: String,
    /// Its output name.
    pub output_artifact_key: String,
}

/// `cachingOptions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachingOptions {
    /// proto3 drops `false`, so absence means off.
    #[serde(default)]
    pub enable_cache: bool,
    /// A user-chosen key mixed into the fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// `triggerPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPolicy {
    /// CEL; false skips the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Whether the task also runs after upstream failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<TriggerStrategy>,
}

/// Upstream requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerStrategy {
    /// Unset.
    TriggerStrategyUnspecified,
    /// The default.
    AllUpstreamTasksSucceeded,
    /// Exit handlers.
    AllUpstreamTasksCompleted,
}

/// `parameterIterator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIterator {
    /// The loop component's input that receives each item.
    pub item_input: String,
    /// Where the items come from.
    pub items: IteratorItems,
}

/// `items`: a raw JSON list or one of the task's inputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorItems {
    /// JSON text of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Name of a task input holding a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_parameter: Option<String>,
}

/// `artifactIterator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactIterator {
    /// The loop component's input receiving each artifact.
    pub item_input: String,
    /// `{inputArtifact: name}`.
    pub items: ArtifactIteratorItems,
}

/// `artifactIterator.items`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactIteratorItems {
    /// Name of a task input artifact list.
    pub input_artifact: String,
}

/// `iteratorPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicy {
    /// At most this many iterations at once (0 = unlimited).
    #[serde(default)]
    pub parallelism_limit: i64,
}

/// `retryPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    #[serde(default)]
    pub max_retry_count: i64,
    /// First delay (`"1s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_duration: Option<String>,
    /// Growth per retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// Cap on the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_duration: Option<String>,
}

/// `dag.outputs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DagOutputs {
    /// Parameter outputs.
    #[serde(default)]
    pub parameters: BTreeMap<String, DagOutputParameter>,
    /// Artifact outputs.
    #[serde(default)]
    pub artifacts: BTreeMap<String, DagOutputArtifact>,
}

/// A DAG parameter output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputParameter {
    /// One producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_parameter: Option<OutputParameterSelector>,
    /// `dsl.OneOf`: the first producer that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_oneof: Option<OneOfSelectors>,
}

/// `{producerSubtask, outputParameterKey}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParameterSelector {
    /// A task of this DAG.
    pub producer_subtask: String,
    /// Its output.
    pub output_parameter_key: String,
}

/// `valueFromOneof`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneOfSelectors {
    /// Candidates in order.
    #[serde(default)]
    pub parameter_selectors: Vec<OutputParameterSelector>,
}

/// A DAG artifact output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputArtifact {
    /// Candidates in order (more than one for `dsl.OneOf`).
    #[serde(default)]
    pub artifact_selectors: Vec<OutputArtifactSelector>,
}

/// `{producerSubtask, outputArtifactKey}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputArtifactSelector {
    /// A task of this DAG.
    pub producer_subtask: String,
    /// Its output.
    pub output_artifact_key: String,
}

/// `deploymentSpec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// Executors by label.
    #[serde(default)]
    pub executors: BTreeMap<String, ExecutorSpec>,
}

/// How a leaf executes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpec {
    /// A process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// `dsl.importer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importer: Option<ImporterSpec>,
    /// Vertex-only resolver (rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Value>,
    /// Vertex-only custom job (rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_job: Option<Value>,
}

/// `container`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The image (recorded; the local runtime runs on the host).
    #[serde(default)]
    pub image: String,
    /// The command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Its arguments (may hold placeholders and `IfPresent`/`Concat` JSON).
    #[serde(default)]
    pub args: Vec<String>,
    /// `set_env_variable`.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
}

/// `{name, value}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// `resources`: both the legacy floats and the newer strings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// Legacy CPU limit in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<f64>,
    /// Legacy CPU request in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<f64>,
    /// Legacy memory limit in GB (10^9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<f64>,
    /// Legacy memory request in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<f64>,
    /// `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_cpu_request: Option<String>,
    /// `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_cpu_limit: Option<String>,
    /// `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_memory_request: Option<String>,
    /// `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_memory_limit: Option<String>,
    /// GPU type and count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorSpec>,
}

/// `accelerator`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorSpec {
    /// Legacy type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Legacy count (a string in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Value>,
    /// New type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// New count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_count: Option<String>,
}

/// `importer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterSpec {
    /// Where the URI comes from.
    pub artifact_uri: ImporterUri,
    /// The artifact's type.
    #[serde(default = "default_artifact_type")]
    pub type_schema: ArtifactType,
    /// Metadata attached to the imported artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Re-import even if known (no effect locally).
    #[serde(default)]
    pub reimport: bool,
}

fn default_artifact_type() -> ArtifactType {
    ArtifactType {
        schema_title: "system.Artifact".into(),
        schema_version: "0.0.1".into(),
    }
}

/// `artifactUri`: a constant or the name of a component input.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterUri {
    /// A literal URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<Value>,
    /// The importer component's input holding the URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_parameter: Option<String>,
}

/// The `kfp-kubernetes` platform spec (second YAML document).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlatformSpec {
    /// `platforms`.
    #[serde(default)]
    pub platforms: BTreeMap<String, Value>,
}

/// Per-executor Kubernetes configuration (`KubernetesExecutorConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesExecutorConfig {
    /// `use_secret_as_env`.
    #[serde(default)]
    pub secret_as_env: Vec<SecretAsEnv>,
    /// `use_secret_as_volume`.
    #[serde(default)]
    pub secret_as_volume: Vec<SecretAsVolume>,
    /// `mount_pvc`.
    #[serde(default)]
    pub pvc_mount: Vec<PvcMount>,
    /// `use_field_path_as_env`.
    #[serde(default)]
    pub field_path_as_env: Vec<FieldPathAsEnv>,
    /// `set_timeout` (an int64, so a string in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<Value>,
    /// Everything else (node selectors, tolerations, pod metadata…) for the Kubernetes runtime.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A secret's keys as environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretAsEnv {
    /// Legacy name field.
    #[serde(default)]
    pub secret_name: String,
    /// The name as a parameter (constant or task output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name_parameter: Option<InputParameterSpec>,
    /// Key → env var.
    #[serde(default)]
    pub key_to_env: Vec<KeyToEnv>,
    /// Missing secret is not an error.
    #[serde(default)]
    pub optional: bool,
}

/// `{secretKey, envVar}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToEnv {
    /// Key in the secret.
    pub secret_key: String,
    /// Variable to set.
    pub env_var: String,
}

/// A secret mounted as files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretAsVolume {
    /// Legacy name field.
    #[serde(default)]
    pub secret_name: String,
    /// The name as a parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name_parameter: Option<InputParameterSpec>,
    /// Where the files appear.
    pub mount_path: String,
    /// Missing secret is not an error.
    #[serde(default)]
    pub optional: bool,
}

/// A PVC mounted into the task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcMount {
    /// Where it appears.
    pub mount_path: String,
    /// The PVC name as a parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_name_parameter: Option<InputParameterSpec>,
    /// Legacy: a task output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_output_parameter: Option<TaskOutputParameter>,
    /// Legacy: a constant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<String>,
    /// Legacy: a component input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_input_parameter: Option<String>,
}

/// `{name, fieldPath}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldPathAsEnv {
    /// Variable name.
    pub name: String,
    /// `metadata.name`, …
    pub field_path: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_map_reads_like_a_btree_map() {
        // serde_json hands a map's duplicate keys to the map; the last wins.
        let m: NameMap<i64> = serde_json::from_str(r#"{"b": 1, "c": 2, "a": 3, "b": 4}"#).unwrap();
        let b: BTreeMap<String, i64> =
            serde_json::from_str(r#"{"b": 1, "c": 2, "a": 3, "b": 4}"#).unwrap();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            b.iter().collect::<Vec<_>>(),
            "same entries in the same order"
        );
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"a": 3, "b": 4, "c": 2})
        );
        assert_eq!(m.index_of("c"), Some(2));
        assert_eq!(m.at(2), (&"c".to_owned(), &2));
        assert_eq!(m["b"], 4);
        assert_eq!(m.get("z"), None);
        assert!(m.contains_key("a") && !m.contains_key("z"));
        assert_eq!(m.len(), 3);
        let empty: NameMap<i64> = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        // Refusals read as a BTreeMap's do.
        let e = serde_json::from_str::<NameMap<i64>>("[1]").unwrap_err();
        let f = serde_json::from_str::<BTreeMap<String, i64>>("[1]").unwrap_err();
        assert_eq!(e.to_string(), f.to_string());
    }
}
