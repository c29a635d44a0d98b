//! Which process owns a piece of work, and whether it is still alive.
//!
//! Controllers record `host:pid:start-ticks` as the owner of a run or an
//! experiment. On the same host, liveness is exact without any heartbeat:
//! the pid must exist with the same start time (so a recycled pid does not
//! count). Owners on other hosts are judged by their heartbeat.

use std::time::Duration;

use oxflow_core::Timestamp;

/// `host:pid:start-ticks` of this process.
pub fn owner_id() -> String {
    let pid = std::process::id();
    format!(
        "{}:{}:{}",
        hostname(),
        pid,
        proc_start_ticks(pid).unwrap_or(0)
    )
}

/// This host's name as owner ids spell it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner that claimed some work still exists: exactly for an
/// owner on this host, by a heartbeat younger than `stale` for another host.
pub fn owner_alive(
    owner: Option<&str>,
    heartbeat: Option<Timestamp>,
    now: Timestamp,
    stale: Duration,
) -> bool {
    let Some(owner) = owner else { return false };
    let mut parts = owner.rsplitn(3, ':');
    let (ticks, pid, host) = (parts.next(), parts.next(), parts.next());
    if let (Some(ticks), Some(pid), Some(host)) = (ticks, pid, host)
        && host == hostname()
    {
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        return proc_start_ticks(pid).map(|t| t.to_string()) == Some(ticks.to_owned());
    }
    heartbeat.is_some_and(|h| now.0 - h.0 < stale.as_millis() as i64)
}

/// Whether `owner` names a process on this host that no longer exists
/// (`false` for owners on other hosts and for anything not an owner id):
/// what a process may clean up after without asking anyone.
pub fn local_owner_gone(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(ticks), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() || ticks.parse::<u64>().is_err() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    proc_start_ticks(pid).map(|t| t.to_string()) != Some(ticks.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_liveness() {
        let stale = Duration::from_secs(60);
        let me = owner_id();
        assert!(owner_alive(Some(&me), None, Timestamp::now(), stale));
        let dead = format!("{}:{}:1", hostname(), u32::MAX - 1);
        assert!(!owner_alive(Some(&dead), None, Timestamp::now(), stale));
        let now = Timestamp::now();
        assert!(owner_alive(Some("elsewhere:1:1"), Some(now), now, stale));
        assert!(!owner_alive(
            Some("elsewhere:1:1"),
            Some(Timestamp(now.0 - 120_000)),
            now,
            stale
        ));
        assert!(!owner_alive(None, Some(now), now, stale));
    }

    #[test]
    fn only_local_owners_that_are_gone_count_as_gone() {
        assert!(!local_owner_gone(&owner_id()));
        assert!(local_owner_gone(&format!(
            "{}:{}:1",
            hostname(),
            u32::MAX - 1
        )));
        // A recycled pid: this process's pid with another start time.
        assert!(local_owner_gone(&format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            proc_start_ticks(std::process::id()).unwrap() + 1
        )));
        assert!(!local_owner_gone("elsewhere:1:1"));
        assert!(!local_owner_gone("not an owner"));
        assert!(!local_owner_gone(&format!("{}:x:1", hostname())));
    }
}
