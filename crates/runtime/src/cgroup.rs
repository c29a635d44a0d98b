//! CPU limits through cgroups, where the host lets Oxflow manage them.
//!
//! Each workload with a CPU limit gets its own child cgroup next to Oxflow's
//! own (`<oxflow's cgroup>/oxflow-<pid>-<n>`) with a CFS quota; the child joins
//! it before `exec`, and the cgroup is removed when the workload has ended.
//! cgroup v2 (`cpu.max`) is preferred; a hybrid host whose `cpu` controller is
//! still on a v1 hierarchy (`cpu.cfs_quota_us`) works too. When neither is
//! writable, CPU limits are not enforced and [`CpuEnforcement::None`] says so.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// How CPU limits are enforced on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuEnforcement {
    /// A cgroup v2 child with `cpu.max`.
    CgroupV2,
    /// A cgroup v1 `cpu` hierarchy child with `cpu.cfs_quota_us`.
    CgroupV1,
    /// Not enforced: no writable cgroup with the cpu controller.
    None,
}

/// The CFS period; quotas are expressed against it.
const PERIOD_US: u64 = 100_000;

/// Where this process may create CPU-limited cgroups.
#[derive(Debug)]
pub(crate) struct CpuCgroups {
    version: CpuEnforcement,
    base: PathBuf,
}

/// Numbers workload cgroups; process-wide, since several runtimes in one
/// process share the same parent cgroup.
static NEXT_CGROUP: AtomicU64 = AtomicU64::new(0);

/// One workload's cgroup.
#[derive(Debug)]
pub(crate) struct WorkloadCgroup {
    dir: PathBuf,
    version: CpuEnforcement,
}

impl CpuCgroups {
    /// The cgroup this process can create CPU-limited children in, or `None`.
    /// Detected once per process: reads /proc and probes by creating and
    /// removing one cgroup.
    pub(crate) fn detect() -> Option<&'static CpuCgroups> {
        static DETECTED: OnceLock<Option<CpuCgroups>> = OnceLock::new();
        DETECTED.get_or_init(CpuCgroups::find).as_ref()
    }

    fn find() -> Option<CpuCgroups> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = parse_mountinfo(&mountinfo);
        let own = parse_proc_cgroup(&own);
        let found = v2_base(&mounts, &own)
            .and_then(|base| CpuCgroups::probe(CpuEnforcement::CgroupV2, base))
            .or_else(|| {
                v1_base(&mounts, &own)
                    .and_then(|base| CpuCgroups::probe(CpuEnforcement::CgroupV1, base))
            });
        if let Some(found) = &found {
            found.remove_stale();
        }
        found
    }

    fn probe(version: CpuEnforcement, base: PathBuf) -> Option<CpuCgroups> {
        if version == CpuEnforcement::CgroupV2 {
            let controllers = std::fs::read_to_string(base.join("cgroup.controllers")).ok()?;
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return None;
            }
            let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control")).ok()?;
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                // Fails with EBUSY when our cgroup holds processes and is not
                // the root ("no internal processes"): then we cannot enforce.
                std::fs::write(base.join("cgroup.subtree_control"), "+cpu").ok()?;
            }
        }
        let cgroups = CpuCgroups { version, base };
        let probe = cgroups
            .base
            .join(format!("oxflow-{}-probe", std::process::id()));
        // Once per process (see `detect`), so the name cannot collide.
        std::fs::create_dir(&probe).ok()?;
        let usable = probe.join(cgroups.quota_file()).exists();
        let _ = std::fs::remove_dir(&probe);
        usable.then_some(cgroups)
    }

    pub(crate) fn enforcement(&self) -> CpuEnforcement {
        self.version
    }

    fn quota_file(&self) -> &'static str {
        match self.version {
            CpuEnforcement::CgroupV2 => "cpu.max",
            _ => "cpu.cfs_quota_us",
        }
    }

    /// Removes cgroups left behind by Oxflow processes that died (their pid is
    /// in the name; another live Oxflow's cgroups are left alone).
    fn remove_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name
                .to_str()
                .and_then(|n| n.strip_prefix("oxflow-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            if kill(Pid::from_raw(owner), None) == Err(nix::errno::Errno::ESRCH) {
                let cgroup = WorkloadCgroup {
                    dir: entry.path(),
                    version: self.version,
                };
                cgroup.kill_all();
                // Fails (and is left alone) while processes are still exiting.
                let _ = std::fs::remove_dir(&cgroup.dir);
            }
        }
    }

    /// Creates a cgroup limited to `millis` millicores.
    pub(crate) fn create(&self, millis: u64) -> io::Result<WorkloadCgroup> {
        let n = NEXT_CGROUP.fetch_add(1, Ordering::Relaxed);
        let dir = self.base.join(format!("oxflow-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let cgroup = WorkloadCgroup {
            dir,
            version: self.version,
        };
        let quota = (millis.saturating_mul(PERIOD_US) / 1000).max(1000);
        let written = match self.version {
            CpuEnforcement::CgroupV2 => {
                std::fs::write(cgroup.dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))
            }
            _ => std::fs::write(cgroup.dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())
                .and_then(|()| {
                    std::fs::write(cgroup.dir.join("cpu.cfs_quota_us"), quota.to_string())
                }),
        };
        if let Err(e) = written {
            let _ = std::fs::remove_dir(&cgroup.dir);
            return Err(e);
        }
        Ok(cgroup)
    }
}

impl WorkloadCgroup {
    /// The file a process writes its pid to (or `0` for itself) to join.
    pub(crate) fn procs_path(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub(crate) fn procs_c_path(&self) -> Option<CString> {
        CString::new(self.procs_path().as_os_str().as_bytes()).ok()
    }

    #[cfg(test)]
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Kills whatever is still in the cgroup and removes it.
    pub(crate) async fn remove(self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(cgroup = %self.dir.display(), error = %e, "Could not remove a workload cgroup.");
                    return;
                }
                Err(_) => self.kill_all(),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILLs every process in the cgroup: the ones that left the workload's
    /// process group (daemons that called setsid) are still here.
    fn kill_all(&self) {
        if self.version == CpuEnforcement::CgroupV2
            && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        if let Ok(procs) = std::fs::read_to_string(self.procs_path()) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// One line of /proc/self/mountinfo, the fields we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    root: String,
    mount_point: PathBuf,
    fstype: String,
    super_options: Vec<String>,
}

/// Parses /proc/self/mountinfo (see proc(5)); malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let _source = right.next()?;
            let super_options = right
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            Some(MountInfo {
                root: unescape(left.get(3)?),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/cgroup: hierarchy id, controllers, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnCgroup {
    hierarchy: u32,
    controllers: Vec<String>,
    path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = parts.next()?.to_string();
            Some(OwnCgroup {
                hierarchy,
                controllers,
                path,
            })
        })
        .collect()
}

/// The directory of our own cgroup inside a mount of its hierarchy.
fn join_own(mount: &MountInfo, own_path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        own_path
    } else {
        own_path.strip_prefix(mount.root.as_str())?
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

fn v2_base(mounts: &[MountInfo], own: &[OwnCgroup]) -> Option<PathBuf> {
    let own = own
        .iter()
        .find(|c| c.hierarchy == 0 && c.controllers.is_empty())?;
    let mount = mounts.iter().find(|m| m.fstype == "cgroup2")?;
    join_own(mount, &own.path)
}

fn v1_base(mounts: &[MountInfo], own: &[OwnCgroup]) -> Option<PathBuf> {
    let own = own
        .iter()
        .find(|c| c.controllers.iter().any(|x| x == "cpu"))?;
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "cpu"))?;
    join_own(mount, &own.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpu\\040acct rw,relatime - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].fstype, "cgroup");
        assert_eq!(mounts[1].super_options, vec!["rw", "cpu"]);
        assert_eq!(
            mounts[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu acct")
        );
        assert_eq!(mounts[3].fstype, "cgroup2");
        assert!(parse_mountinfo("garbage\n").is_empty());
    }

    #[test]
    fn own_cgroup_paths() {
        let mounts = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup("4:memory:/a/b\n1:cpu:/jobs/x\n0::/user.slice/s.scope\n");
        assert_eq!(own[1].controllers, vec!["cpu"]);
        assert_eq!(
            v1_base(&mounts, &own),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/jobs/x"))
        );
        assert_eq!(
            v2_base(&mounts, &own),
            Some(PathBuf::from("/sys/fs/cgroup/unified/user.slice/s.scope"))
        );
        let root = parse_proc_cgroup("1:cpu,cpuacct:/\n0::/\n");
        let combined = parse_mountinfo("1 1 0:1 / /cg/cpu rw - cgroup cgroup rw,cpu,cpuacct\n");
        assert_eq!(v1_base(&combined, &root), Some(PathBuf::from("/cg/cpu")));
        assert_eq!(v2_base(&combined, &root), None, "no cgroup2 mount");
        // A bind-mounted subtree (a container seeing only its own cgroup).
        let sub =
            parse_mountinfo("1 1 0:1 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let inside = parse_proc_cgroup("0::/kubepods/pod1/c1\n");
        assert_eq!(
            v2_base(&sub, &inside),
            Some(PathBuf::from("/sys/fs/cgroup/c1"))
        );
        let outside = parse_proc_cgroup("0::/elsewhere\n");
        assert_eq!(v2_base(&sub, &outside), None);
    }

    /// On a host where cgroups are writable (as root here), a workload cgroup
    /// gets its quota and disappears after `remove`; elsewhere detection says no.
    #[tokio::test]
    async fn workload_cgroup_lifecycle() {
        let Some(cgroups) = CpuCgroups::detect() else {
            return;
        };
        let cgroup = cgroups.create(250).unwrap();
        let quota = std::fs::read_to_string(cgroup.dir().join(cgroups.quota_file())).unwrap();
        assert!(quota.starts_with("25000"), "{quota:?}");
        let dir = cgroup.dir().to_path_buf();
        assert!(dir.is_dir());
        cgroup.remove().await;
        assert!(!dir.exists());
    }
}
