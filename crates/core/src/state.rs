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
    }

    #[test]
    fn terminal_states() {
        assert!(RunState::Failed.is_terminal());
        assert!(!RunState::Running.is_terminal());
        assert!(TaskState::Skipped.is_terminal());
        assert!(!TaskState::Pending.is_terminal());
    }
}
