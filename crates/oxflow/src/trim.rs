//! Freed heap given back to the system after bursts of work.
//!
//! glibc's malloc returns only the top of a heap by itself; memory freed
//! below live allocations stays with the process. After a burst (thousands
//! of runs executed, each step's pod written, cached and dropped) an idle
//! `oxflow up` held 70 MiB of which it used 44: `malloc_trim(0)` gave the
//! rest back (BENCHMARKS.md, issue #13). Frees leave the resident size
//! as it is, so the end of a burst is told by the CPU instead: a task
//! reads the process's CPU time every second and trims once the process
//! has worked at least a second of CPU since the last trim and then spent
//! a second (nearly) idle. Trimming walks the heap (a few milliseconds) on
//! a blocking thread; an idle server never trims.

use std::time::Duration;

/// How often the CPU time is read.
const EVERY: Duration = Duration::from_secs(1);

/// CPU time since the last trim that makes a burst (clock ticks: 1 s).
const BURST_TICKS: u64 = 100;

/// CPU time within one reading that still counts as idle (clock ticks).
const IDLE_TICKS: u64 = 2;

/// The process's CPU time so far (user + system, clock ticks), if readable.
fn cpu_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15, the 12th and 13th after ')'.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The resident size in bytes (`/proc/self/statm`), if readable.
fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Gives free heap pages back; true when glibc released any.
fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks malloc's own arenas under their locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Starts the trimming task; it ends with the runtime.
pub(crate) fn start() {
    tokio::spawn(async {
        let Some(mut at_trim) = cpu_ticks() else {
            return;
        };
        let mut last = at_trim;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(now) = cpu_ticks() else { return };
            let idle = now.saturating_sub(last) <= IDLE_TICKS;
            last = now;
            if idle && now.saturating_sub(at_trim) >= BURST_TICKS {
                let before = resident_bytes().unwrap_or(0);
                let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
                let after = resident_bytes().unwrap_or(0);
                tracing::debug!(
                    before_mib = before >> 20,
                    after_mib = after >> 20,
                    released,
                    "Gave freed heap back after a burst."
                );
                at_trim = cpu_ticks().unwrap_or(now);
                last = at_trim;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_time_is_read() {
        let a = cpu_ticks().unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(cpu_ticks().unwrap() > a);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_heap_is_given_back() {
        let before = resident_bytes().unwrap();
        assert!(before > 0);
        // Many small blocks, every other one kept, so the freed ones lie
        // below live allocations where glibc does not return them alone.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1024]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter().step_by(64).cloned().collect();
        blocks.clear();
        blocks.shrink_to_fit();
        let held = resident_bytes().unwrap();
        assert!(trim());
        let after = resident_bytes().unwrap();
        // About 40 MiB were freed below the kept copies.
        assert!(
            held.saturating_sub(after) > 16 << 20,
            "held {held}, after {after}"
        );
        assert_eq!(kept.len(), 625);
    }
}
