//! What the tuning controller's tests share.

use std::sync::Arc;

use oxflow_resources::Resources;
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_tuning::{TuningConfig, TuningController};

/// A tuning controller over `resources`, running trials as local
/// processes with their files under `dir`.
pub fn controller(dir: &std::path::Path, resources: Resources) -> TuningController {
    let runtime = Arc::new(LocalRuntime::new(LocalConfig {
        scratch_dir: dir.join("scratch"),
        warm_python: false,
        ..Default::default()
    }));
    TuningController::new(
        resources,
        runtime,
        TuningConfig {
            logs_dir: dir.join("logs"),
            work_dir: dir.join("work"),
            report_url: None,
            report_tokens: None,
            python_path: None,
            owner: oxflow_runtime::owner::owner_id(),
        },
    )
}

/// The builtin and tuning kinds.
pub fn registry() -> oxflow_resources::Registry {
    oxflow_resources::Registry::new(
        oxflow_resources::builtin::kinds()
            .into_iter()
            .chain(oxflow_tuning::kinds::kinds()),
    )
}

/// A random search over x in [0, 1], one trial at a time, three trials;
/// each trial prints `loss=<x>`.
pub fn experiment_yaml(name: &str) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "echo loss=${{trialParameters.x}}"]
            restartPolicy: Never
"#
    )
}
