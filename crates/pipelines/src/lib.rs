//! Kubeflow Pipelines v2 on Oxflow: load and validate pipelines compiled by
//! the real `kfp` SDK, and execute them.
//!
//! - [`Pipeline`] parses the IR (YAML or JSON, with the optional
//!   `kfp-kubernetes` platform spec) into typed structs and validates every
//!   reference up front; errors name the field path.
//! - [`Engine`] runs a stored run: DAG scheduling, conditions (a CEL subset),
//!   loops with parallelism and ordered fan-in, exit handlers, sub-DAGs,
//!   caching, retries, secrets and volumes. Leaf tasks become
//!   [`oxflow_core::Workload`]s handed to an [`oxflow_runtime::Runtime`].
//!
//! Architecture invariant: this crate never touches SQL or HTTP; it reads and
//! writes runs through `oxflow-store` and runs processes through the runtime.

pub mod cel;
mod controller;
mod engine;
mod error;
pub mod executor;
pub mod ir;
mod load;
pub mod pods;
mod python;
mod schedule;
mod scratch;
pub mod value;

pub use controller::{RunController, RunEvent};
pub use engine::{
    Engine, EngineConfig, HEARTBEAT_STALE, RunOptions, SubmitRequest, TaskEvent, backoff,
    parse_duration,
};
pub use error::{PipelineError, Result};
pub use load::{MAX_PIPELINE_BYTES, Pipeline, SUPPORTED_SCHEMA_VERSIONS};
pub use python::{PythonEnvs, which};
pub use schedule::{
    Clock, CronExpr, Due, FireState, MAX_CATCHUP, MAX_CONCURRENCY, ManualClock, PassReport,
    RecurringRunScheduler, Schedule, ScheduleError, SystemClock, Trigger, check_max_concurrency,
    run_name,
};
