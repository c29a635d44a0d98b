use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The lifecycle of a run, named as KFP's `RuntimeState` names it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Accepted and stored; no engine has started it yet (or it is waiting to be resumed).
    Pending,
    /// An engine owns it and is executing tasks.
    Running,
    /// Every task succeeded or was skipped.
    Succeeded,
    /// A task failed after its retries, or the run could not start.
    Failed,
    /// Cancellation was asked for; tasks are being stopped.
    Canceling,
    /// Stopped on request.
    Canceled,
}

/// The lifecycle of one task (a container step, a sub-DAG, a loop or one loop iteration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Known, waiting for its dependencies or for a free slot.
    Pending,
    /// Executing (or its children are).
    Running,
    /// Finished with outputs (possibly taken from the cache).
    Succeeded,
    /// Not executed because its condition was false or an upstream task was skipped.
    Skipped,
    /// Failed after its retries.
    Failed,
    /// Stopped because the run was cancelled.
    Canceled,
}

/// The lifecycle of a Katib experiment, named as Katib's condition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExperimentPhase {
    /// Accepted and stored; no controller has started it yet.
    Created,
    /// A controller owns it and creates trials.
    Running,
    /// Resumed after it ended (larger `maxTrialCount`, or after a stop);
    /// becomes `Running` when the controller picks it up.
    Restarting,
    /// Goal reached, max trials reached, or the search space is exhausted.
    Succeeded,
    /// Too many failed trials, or the experiment could not run.
    Failed,
    /// Stopped on request (an Oxflow extension: Katib has no stop verb); its
    /// running trials were killed. It can be resumed.
    Stopped,
}

/// The lifecycle of one trial, named as Katib's trial condition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrialPhase {
    /// Suggested and stored; its process has not started.
    Created,
    /// Its process runs.
    Running,
    /// Exited 0 and reported the objective metric.
    Succeeded,
    /// Exited non-zero, or could not start.
    Failed,
    /// Stopped because the experiment was stopped or its parallelism lowered.
    Killed,
    /// Stopped by an early-stopping rule.
    EarlyStopped,
    /// Exited 0 without ever reporting the objective metric.
    MetricsUnavailable,
}

/// A state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The wire name (`SUCCEEDED`, …), also what the store keeps.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }
        impl FromStr for $ty {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s { $($name => Ok(Self::$variant),)* other => Err(UnknownState(other.to_owned())) }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

names!(RunState {
    Pending => "PENDING",
    Running => "RUNNING",
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    Canceling => "CANCELING",
    Canceled => "CANCELED",
});

names!(TaskState {
    Pending => "PENDING",
    Running => "RUNNING",
    Succeeded => "SUCCEEDED",
    Skipped => "SKIPPED",
    Failed => "FAILED",
    Canceled => "CANCELED",
});

names!(ExperimentPhase {
    Created => "Created",
    Running => "Running",
    Restarting => "Restarting",
    Succeeded => "Succeeded",
    Failed => "Failed",
    Stopped => "Stopped",
});

names!(TrialPhase {
    Created => "Created",
    Running => "Running",
    Succeeded => "Succeeded",
    Failed => "Failed",
    Killed => "Killed",
    EarlyStopped => "EarlyStopped",
    MetricsUnavailable => "MetricsUnavailable",
});

impl ExperimentPhase {
    /// Whether the experiment has ended (it may still be resumed).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }
}

impl TrialPhase {
    /// Whether the trial has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Created | Self::Running)
    }
}

impl RunState {
    /// Whether the run will never change state again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

impl TaskState {
    /// Whether the task will never change state again within this attempt of the run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Skipped | Self::Failed | Self::Canceled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            RunState::Pending,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Canceling,
            RunState::Canceled,
        ] {
            assert_eq!(s.as_str().parse::<RunState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!("SKIPPED".parse::<TaskState>().unwrap(), TaskState::Skipped);
        assert!("DONE".parse::<TaskState>().is_err());
        for p in [
            TrialPhase::Created,
            TrialPhase::EarlyStopped,
            TrialPhase::MetricsUnavailable,
        ] {
            assert_eq!(p.as_str().parse::<TrialPhase>().unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(
            "Restarting".parse::<ExperimentPhase>().unwrap(),
            ExperimentPhase::Restarting
        );
    }

    #[test]
    fn terminal_states() {
        assert!(RunState::Failed.is_terminal());
        assert!(!RunState::Running.is_terminal());
        assert!(TaskState::Skipped.is_terminal());
        assert!(!TaskState::Pending.is_terminal());
    }
}
