use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// One unit of work for a runtime: what Kubernetes would run as a Pod's main container.
///
/// Pipeline tasks, trials, training replicas and notebook servers all become
/// workloads; controllers build them and never know whether the local process
/// runtime or the Kubernetes runtime executes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// A name for logs and process titles (a pod name on Kubernetes).
    pub name: String,
    /// The program, as `command[0]` in a container spec.
    pub program: String,
    /// The remaining command and arguments, already resolved.
    pub args: Vec<String>,
    /// Environment variables set on top of the runtime's base environment.
    pub env: BTreeMap<String, String>,
    /// Working directory; the runtime picks a scratch directory when `None`.
    pub working_dir: Option<PathBuf>,
    /// Where stdout and stderr go (interleaved, as `kubectl logs` shows them).
    pub log_path: PathBuf,
    /// Requests and limits as the user wrote them.
    pub resources: Resources,
    /// Wall-clock limit after which the workload is killed.
    pub timeout: Option<Duration>,
    /// The container image; the local runtime records it and runs on the host.
    pub image: Option<String>,
    /// Directories made visible to the workload.
    pub mounts: Vec<Mount>,
    /// The program is a Python interpreter started as `python -m module …` that
    /// may be served from a warm, pre-imported interpreter (a fork server).
    pub warm_python: bool,
    /// Kubernetes-only settings (node selectors, tolerations, pod metadata) kept
    /// verbatim for the Kubernetes runtime; the local runtime ignores them.
    pub kubernetes: Option<serde_json::Value>,
}

/// CPU, memory and accelerator requests and limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU request in millicores.
    pub cpu_request_millis: Option<u64>,
    /// CPU limit in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// Memory request in bytes.
    pub memory_request_bytes: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Accelerator type (`nvidia.com/gpu`) and count.
    pub accelerator: Option<(String, u32)>,
}

/// A host directory made visible to a workload at `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// The directory on the host (a volume directory, a secret's files).
    pub source: PathBuf,
    /// Where the workload expects it.
    pub target: PathBuf,
    /// Whether the workload may write to it.
    pub read_only: bool,
}

impl Resources {
    /// Parses a Kubernetes CPU quantity (`500m`, `1`, `0.5`) into millicores.
    pub fn parse_cpu(q: &str) -> Option<u64> {
        let q = q.trim();
        if let Some(m) = q.strip_suffix('m') {
            return m.parse::<u64>().ok();
        }
        let v: f64 = q.parse().ok()?;
        (v >= 0.0 && v.is_finite()).then(|| (v * 1000.0).round() as u64)
    }

    /// Parses a Kubernetes memory quantity (`256Mi`, `1G`, `1e9`, `512`) into bytes.
    pub fn parse_memory(q: &str) -> Option<u64> {
        let q = q.trim();
        const UNITS: [(&str, f64); 12] = [
            ("Ki", 1024.0),
            ("Mi", 1048576.0),
            ("Gi", 1073741824.0),
            ("Ti", 1099511627776.0),
            ("Pi", 1125899906842624.0),
            ("Ei", 1152921504606846976.0),
            ("k", 1e3),
            ("M", 1e6),
            ("G", 1e9),
            ("T", 1e12),
            ("P", 1e15),
            ("E", 1e18),
        ];
        for (suffix, mult) in UNITS {
            if let Some(n) = q.strip_suffix(suffix) {
                let v: f64 = n.parse().ok()?;
                return (v >= 0.0 && v.is_finite()).then(|| (v * mult).round() as u64);
            }
        }
        let v: f64 = q.parse().ok()?;
        (v >= 0.0 && v.is_finite()).then(|| v.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(Resources::parse_cpu("500m"), Some(500));
        assert_eq!(Resources::parse_cpu("1"), Some(1000));
        assert_eq!(Resources::parse_cpu("0.25"), Some(250));
        assert_eq!(Resources::parse_cpu("lots"), None);
        assert_eq!(Resources::parse_memory("256Mi"), Some(256 * 1024 * 1024));
        assert_eq!(Resources::parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(Resources::parse_memory("1e3"), Some(1000));
        assert_eq!(Resources::parse_memory("-1Gi"), None);
    }
}
