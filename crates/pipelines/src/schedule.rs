//! Recurring runs (KFP `RecurringRun`): when a trigger fires, and the
//! scheduler that turns due time slots into runs.
//!
//! The fire-time computation is pure ([`Trigger::due`]) and the scheduler is
//! level-triggered like [`crate::RunController`]: every pass reads the
//! enabled recurring runs, computes each one's due slots from its stored
//! `last_fired_at` and the [`Clock`], and creates a run for a slot only after
//! winning the compare-and-set on `last_fired_at`
//! ([`oxflow_store::Store::set_last_fired`]). Two schedulers on one store, or
//! one restarted, therefore never fire a slot twice, and a restart catches up
//! through the same code as a normal pass.
//!
//! Semantics, KFP's (its ScheduledWorkflow controller) where KFP defines them:
//! - A slot is a whole UTC second; there is no time zone and so no DST.
//! - The first slot is strictly after the *anchor*: the latest of the
//!   creation time, `start_time`, the time the recurring run was last enabled
//!   (`updated_at`) and `last_fired_at`. Slots that fall while a recurring run
//!   is disabled are never fired, with or without catch-up.
//! - `end_time` is inclusive: a slot at `end_time` fires, later ones never do.
//! - Cron: 6 fields, seconds first, as robfig/cron (which KFP uses) parses
//!   them: `?` means `*`, `0/10` means every 10 from 0, names like `MON` and
//!   `JAN`, descriptors `@hourly`, `@daily`/`@midnight`, `@weekly`,
//!   `@monthly`, `@yearly`/`@annually`. Periodic: every `interval_second`
//!   seconds on a grid starting at `start_time` (or the creation time).
//! - Catch-up (`no_catchup = false`) fires every missed slot, oldest first,
//!   but at most [`MAX_CATCHUP`] of them: when more are due (a long outage of
//!   a frequent schedule), the older ones are skipped with a warning.
//!   `no_catchup = true` fires only the latest due slot.
//! - `max_concurrency`: while that many runs of the recurring run are not
//!   terminal, no run is created and the due slot *waits* (it is delayed, not
//!   skipped, as in KFP). A waiting slot fires when a run finishes; with
//!   `no_catchup` it is superseded if a newer slot has become due meanwhile.
//! - At most once: `last_fired_at` moves before the run is inserted, so a
//!   crash between the two loses that one slot rather than firing it twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDateTime, CronDateTime, Resolution, Weekday};
use oxflow_core::{RunState, Timestamp};
use oxflow_store::{
    Filter, FilterOp, FilterValue, ListQuery, MAX_PAGE_SIZE, RecurringRunRecord, RunRecord,
    StoreError,
};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::controller::{RunController, RunEvent};
use crate::engine::{RunOptions, SubmitRequest};
use crate::error::{PipelineError, Result};
use crate::load::Pipeline;

/// KFP's bounds for `max_concurrency`: 1 to this.
pub const MAX_CONCURRENCY: i64 = 10;

/// At most this many missed slots are back-filled per recurring run; older
/// ones are skipped (see the module docs).
pub const MAX_CATCHUP: usize = 100;

/// How often the scheduler looks again when no slot is due sooner: the
/// bound on how long a new or re-enabled recurring run, or a slot waiting
/// for `max_concurrency`, goes unnoticed.
const RESYNC: Duration = Duration::from_secs(1);

const MS_PER_SEC: i64 = 1000;

// ------------------------------------------------------------------ clock

/// Where the scheduler gets the time, so tests can drive it by hand.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock, with tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = Timestamp::now().millis_until(deadline);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait as u64)))
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock to `t` (backwards too) and wakes sleepers whose deadline passed.
    pub fn set(&self, t: Timestamp) {
        self.now.send_replace(t);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now
            .send_modify(|t| *t = Timestamp(t.millis().saturating_add(by)));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which this future borrows.
            let _ = rx.wait_for(|t| *t >= deadline).await;
        })
    }
}

// ---------------------------------------------------------------- trigger

/// A trigger or setting that cannot be used, with the field at fault
/// (`trigger.cron_schedule.cron`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    /// Field path in the KFP `RecurringRun` shape.
    pub field: String,
    /// What is wrong and what would work.
    pub message: String,
}

impl ScheduleError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A parsed 6-field cron expression (seconds first), evaluated in UTC.
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
    // Boxed: a parsed pattern is a few hundred bytes.
    cron: Box<croner::Cron>,
}

impl CronExpr {
    /// Parses robfig/cron syntax with seconds (see the module docs). The
    /// error says what is wrong, without a field name.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let trimmed = text.trim();
        let pattern = match trimmed.to_ascii_lowercase().as_str() {
            "" => return Err("required: a cron expression such as \"0 0 9 ? * 2-6\"".into()),
            // robfig's name for @daily, which croner lacks.
            "@midnight" => "@daily".to_owned(),
            s if s.starts_with("@every") => {
                return Err(format!(
                    "{trimmed:?}: @every is not supported here; use periodic_schedule.interval_second"
                ));
            }
            _ => trimmed.to_owned(),
        };
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && fields != 6 {
            return Err(format!(
                "{trimmed:?} has {fields} fields; KFP cron expressions have 6: \
                 second minute hour day-of-month month day-of-week (e.g. \"0 0 9 ? * 2-6\")"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build()
            .parse(&pattern)
            .map_err(|e| format!("{trimmed:?} is not a valid cron expression: {e}"))?;
        Ok(Self {
            text: trimmed.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first matching second strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let from = UtcSecond(t.millis().div_euclid(MS_PER_SEC));
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        next.0.checked_mul(MS_PER_SEC).map(Timestamp)
    }

    /// The last matching second at or before `t`.
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let from = UtcSecond(t.millis().div_euclid(MS_PER_SEC));
        let prev = self.cron.find_previous_occurrence(&from, true).ok()?;
        prev.0.checked_mul(MS_PER_SEC).map(Timestamp)
    }
}

/// How often a trigger fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// KFP `cron_schedule.cron`.
    Cron(CronExpr),
    /// KFP `periodic_schedule.interval_second`.
    Periodic {
        /// Seconds between slots, at least 1.
        interval_secs: i64,
    },
}

/// A KFP `Trigger`: a schedule and the window it fires in.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Cron or periodic.
    pub schedule: Schedule,
    /// No slot at or before this time fires.
    pub start_time: Option<Timestamp>,
    /// No slot after this time fires.
    pub end_time: Option<Timestamp>,
}

/// What a recurring run's record says about its past, for [`Trigger::due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireState {
    /// When the recurring run was created.
    pub created_at: Timestamp,
    /// When it was last enabled (its `updated_at`; the creation time if never changed).
    pub enabled_at: Timestamp,
    /// The last slot a run was created for.
    pub last_fired_at: Option<Timestamp>,
}

/// The slots a recurring run should fire now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Slots to fire, oldest first.
    pub slots: Vec<Timestamp>,
    /// Set when more than the catch-up cap was due: the slots up to and
    /// including this one are skipped, by moving `last_fired_at` here first.
    pub skip_to: Option<Timestamp>,
    /// The first slot after now, for sleeping until then; `None` when the
    /// trigger has ended.
    pub next: Option<Timestamp>,
}

impl Trigger {
    /// Reads a KFP `Trigger` (`{"cron_schedule": {...}}` or
    /// `{"periodic_schedule": {...}}`); errors name the field
    /// (`trigger.periodic_schedule.interval_second`). `int64` fields may be
    /// numbers or strings; the epoch (how KFP renders an unset time) means unset.
    pub fn from_json(v: &Value) -> std::result::Result<Self, ScheduleError> {
        let obj = match v {
            Value::Object(m) => m,
            Value::Null => {
                return Err(ScheduleError::new(
                    "trigger",
                    "required: cron_schedule or periodic_schedule",
                ));
            }
            other => {
                return Err(ScheduleError::new(
                    "trigger",
                    format!("expected an object, got {other}"),
                ));
            }
        };
        let present = |k: &str| obj.get(k).filter(|x| !x.is_null());
        let (kind, body) = match (present("cron_schedule"), present("periodic_schedule")) {
            (Some(c), None) => ("cron_schedule", c),
            (None, Some(p)) => ("periodic_schedule", p),
            (Some(_), Some(_)) => {
                return Err(ScheduleError::new(
                    "trigger",
                    "give either cron_schedule or periodic_schedule, not both",
                ));
            }
            (None, None) => {
                return Err(ScheduleError::new(
                    "trigger",
                    "required: cron_schedule or periodic_schedule",
                ));
            }
        };
        let here = |f: &str| format!("trigger.{kind}.{f}");
        if !body.is_object() {
            return Err(ScheduleError::new(
                format!("trigger.{kind}"),
                format!("expected an object, got {body}"),
            ));
        }
        let start_time = time_field(body, "start_time", &here("start_time"))?;
        let end_time = time_field(body, "end_time", &here("end_time"))?;
        if let (Some(s), Some(e)) = (start_time, end_time)
            && e < s
        {
            return Err(ScheduleError::new(
                here("end_time"),
                format!("{e} is before start_time {s}"),
            ));
        }
        let schedule = if kind == "cron_schedule" {
            let text = match body.get("cron") {
                Some(Value::String(s)) => s.as_str(),
                None | Some(Value::Null) => "",
                Some(other) => {
                    return Err(ScheduleError::new(
                        here("cron"),
                        format!("expected a string, got {other}"),
                    ));
                }
            };
            let cron = CronExpr::parse(text).map_err(|m| ScheduleError::new(here("cron"), m))?;
            // A pattern may parse and still never match (30 February).
            let probe = start_time.unwrap_or(Timestamp(0));
            if cron.next_after(probe).is_none() {
                return Err(ScheduleError::new(
                    here("cron"),
                    format!("{text:?} never matches a real date"),
                ));
            }
            Schedule::Cron(cron)
        } else {
            let field = here("interval_second");
            let n = match body.get("interval_second") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
                None | Some(Value::Null) => {
                    return Err(ScheduleError::new(field, "required: seconds between runs"));
                }
                Some(_) => None,
            };
            let interval_secs = n.ok_or_else(|| {
                ScheduleError::new(
                    field.clone(),
                    format!("expected an integer, got {}", body["interval_second"]),
                )
            })?;
            // Bounded so that millisecond arithmetic can never overflow.
            if !(1..=i64::from(u32::MAX)).contains(&interval_secs) {
                return Err(ScheduleError::new(
                    field,
                    format!("must be between 1 and {}, got {interval_secs}", u32::MAX),
                ));
            }
            Schedule::Periodic { interval_secs }
        };
        Ok(Self {
            schedule,
            start_time,
            end_time,
        })
    }

    /// The KFP `Trigger` JSON, normalised: times as RFC 3339, unset ones left out.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        let kind = match &self.schedule {
            Schedule::Cron(c) => {
                body.insert("cron".into(), json!(c.as_str()));
                "cron_schedule"
            }
            Schedule::Periodic { interval_secs } => {
                body.insert("interval_second".into(), json!(interval_secs));
                "periodic_schedule"
            }
        };
        if let Some(t) = self.start_time {
            body.insert("start_time".into(), json!(t.to_rfc3339()));
        }
        if let Some(t) = self.end_time {
            body.insert("end_time".into(), json!(t.to_rfc3339()));
        }
        json!({ kind: body })
    }

    /// The slots to fire at `now` (see the module docs for the rules):
    /// with `no_catchup` at most the latest due one, otherwise every due one
    /// up to `cap`, oldest first.
    pub fn due(&self, state: &FireState, now: Timestamp, no_catchup: bool, cap: usize) -> Due {
        let origin = self.origin(state.created_at);
        let mut anchor = state
            .last_fired_at
            .unwrap_or(state.created_at)
            .max(state.enabled_at);
        if let Some(s) = self.start_time {
            anchor = anchor.max(s);
        }
        let horizon = self.end_time.map_or(now, |e| e.min(now));
        let next = self
            .next_after(anchor.max(now), origin)
            .filter(|t| self.end_time.is_none_or(|e| *t <= e));
        let mut due = Due {
            next,
            ..Due::default()
        };
        if horizon <= anchor {
            return due;
        }
        if no_catchup {
            due.slots = self
                .latest_at_or_before(horizon, origin)
                .filter(|t| *t > anchor)
                .into_iter()
                .collect();
            return due;
        }
        let cap = cap.max(1);
        let mut t = anchor;
        while due.slots.len() <= cap {
            match self.next_after(t, origin) {
                Some(s) if s <= horizon => {
                    due.slots.push(s);
                    t = s;
                }
                _ => return due,
            }
        }
        // More than `cap` are due: keep the newest `cap`, counting back from
        // the horizon, and skip everything up to the one before them.
        let mut newest = Vec::with_capacity(cap + 1);
        let mut t = horizon;
        while newest.len() <= cap {
            match self.latest_at_or_before(t, origin) {
                Some(s) if s > anchor => {
                    newest.push(s);
                    t = Timestamp(s.millis() - 1);
                }
                _ => break,
            }
        }
        if newest.len() > cap {
            due.skip_to = newest.pop();
        }
        newest.reverse();
        due.slots = newest;
        due
    }

    /// Where a periodic grid starts: `start_time`, else the creation time, in whole seconds.
    fn origin(&self, created_at: Timestamp) -> Timestamp {
        floor_second(self.start_time.unwrap_or(created_at))
    }

    /// The first slot strictly after `t`, ignoring `end_time`.
    fn next_after(&self, t: Timestamp, origin: Timestamp) -> Option<Timestamp> {
        match &self.schedule {
            Schedule::Cron(c) => c.next_after(t),
            Schedule::Periodic { interval_secs } => {
                let step = interval_secs * MS_PER_SEC;
                if t < origin {
                    return Some(Timestamp(origin.millis() + step));
                }
                let k = (t.millis() - origin.millis()).div_euclid(step) + 1;
                k.checked_mul(step)
                    .and_then(|d| origin.millis().checked_add(d))
                    .map(Timestamp)
            }
        }
    }

    /// The last slot at or before `t`, ignoring `end_time`.
    fn latest_at_or_before(&self, t: Timestamp, origin: Timestamp) -> Option<Timestamp> {
        match &self.schedule {
            Schedule::Cron(c) => c.latest_at_or_before(t),
            Schedule::Periodic { interval_secs } => {
                let step = interval_secs * MS_PER_SEC;
                let k = (t.millis() - origin.millis()).div_euclid(step);
                (k >= 1).then(|| Timestamp(origin.millis() + k * step))
            }
        }
    }
}

fn floor_second(t: Timestamp) -> Timestamp {
    Timestamp(t.millis().div_euclid(MS_PER_SEC) * MS_PER_SEC)
}

/// An optional RFC 3339 time; `""` and the epoch mean unset.
fn time_field(
    body: &Value,
    key: &str,
    field: &str,
) -> std::result::Result<Option<Timestamp>, ScheduleError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            // Python's isoformat() of a naive datetime has no offset: UTC.
            let t = Timestamp::parse_rfc3339(s)
                .or_else(|| Timestamp::parse_rfc3339(&format!("{s}Z")))
                .ok_or_else(|| {
                    ScheduleError::new(
                        field,
                        format!("{s:?} is not an RFC 3339 time such as \"2026-01-01T00:00:00Z\""),
                    )
                })?;
            Ok((t.millis() != 0).then_some(t))
        }
        Some(other) => Err(ScheduleError::new(
            field,
            format!("expected an RFC 3339 string, got {other}"),
        )),
    }
}

/// Checks KFP's bounds on `max_concurrency` (1 to [`MAX_CONCURRENCY`]).
pub fn check_max_concurrency(n: i64) -> std::result::Result<i64, ScheduleError> {
    if (1..=MAX_CONCURRENCY).contains(&n) {
        Ok(n)
    } else {
        Err(ScheduleError::new(
            "max_concurrency",
            format!("must be between 1 and {MAX_CONCURRENCY}, got {n}"),
        ))
    }
}

/// A UTC instant in whole seconds, which croner searches over. No time zone
/// means every wall-clock time exists exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct UtcSecond(i64);

impl CronDateTime for UtcSecond {
    fn to_civil(&self) -> CivilDateTime {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        CivilDateTime::new(
            croner::CivilDate::from_parts_unchecked(y, m, d),
            croner::CivilTime::from_parts_unchecked(secs / 3600, secs % 3600 / 60, secs % 60),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        // 1970-01-01 was a Thursday.
        Weekday::from_days_from_sunday((self.0.div_euclid(86_400) + 4).rem_euclid(7) as u32)
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> std::result::Result<Resolution<Self>, CronError> {
        let days = days_from_civil(civil.year(), civil.month(), civil.day());
        let secs = i64::from(civil.hour() * 3600 + civil.minute() * 60 + civil.second());
        Ok(Resolution::Single(UtcSecond(days * 86_400 + secs)))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0.checked_add(seconds).map(UtcSecond)
    }

    fn cmp_instant(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u32, d as u32)
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// -------------------------------------------------------------- scheduler

/// What one [`RecurringRunScheduler::pass`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Ids of the runs it created, in creation order.
    pub created: Vec<String>,
    /// The earliest future slot of any enabled recurring run.
    pub next_wake: Option<Timestamp>,
}

/// Creates the runs of enabled recurring runs as their slots come due.
#[derive(Clone)]
pub struct RecurringRunScheduler {
    inner: Arc<SchedulerInner>,
}

struct SchedulerInner {
    controller: RunController,
    clock: Arc<dyn Clock>,
    nudge: Notify,
    shutdown: CancellationToken,
}

impl RecurringRunScheduler {
    /// A scheduler creating runs through `controller`'s engine and store,
    /// telling `controller` about each, on `clock`'s time.
    pub fn new(controller: RunController, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(SchedulerInner {
                controller,
                clock,
                nudge: Notify::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Starts the loop (a pass at each due slot, every second otherwise, and
    /// whenever a run finishes); returns at once.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run_loop().await })
    }

    /// Stops the loop after the current pass.
    pub fn stop(&self) {
        self.inner.shutdown.cancel();
    }

    /// Asks for a pass now (a recurring run was created or enabled).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    async fn run_loop(&self) {
        let mut events = self.inner.controller.subscribe();
        loop {
            let wake = match self.pass().await {
                Ok(report) => report.next_wake,
                Err(e) => {
                    tracing::error!(error = %e, "Recurring run pass failed; retrying.");
                    None
                }
            };
            let resync = Timestamp(self.inner.clock.now().millis() + RESYNC.as_millis() as i64);
            let until = wake.map_or(resync, |w| w.min(resync));
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = self.inner.nudge.notified() => {}
                _ = self.inner.clock.sleep_until(until) => {}
                _ = run_finished(&mut events) => {}
            }
        }
    }

    /// One reconcile pass over every enabled recurring run: creates the runs
    /// of the slots due at the clock's now.
    pub async fn pass(&self) -> Result<PassReport> {
        let store = self.inner.controller.engine().store();
        let now = self.inner.clock.now();
        let mut report = PassReport::default();
        let mut q = ListQuery {
            filters: vec![Filter::new(
                "enabled",
                FilterOp::Equals,
                FilterValue::Int(1),
            )],
            page_size: MAX_PAGE_SIZE,
            ..ListQuery::default()
        };
        loop {
            let page = store.list_recurring_runs(&q).await?;
            for rr in &page.items {
                // One recurring run failing (a database hiccup on its insert)
                // must not hold up the others; the next pass retries it.
                let (created, next) = match self.reconcile(rr, now).await {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(recurring_run = %rr.id, error = %e, "Scheduling a recurring run failed; retrying on the next pass.");
                        (Vec::new(), None)
                    }
                };
                report.created.extend(created);
                report.next_wake = match (report.next_wake, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            match page.next_page_token {
                Some(t) => q.page_token = Some(t),
                None => break,
            }
        }
        if !report.created.is_empty() {
            self.inner.controller.nudge();
        }
        Ok(report)
    }

    /// Fires the due slots of one recurring run.
    async fn reconcile(
        &self,
        rr: &RecurringRunRecord,
        now: Timestamp,
    ) -> Result<(Vec<String>, Option<Timestamp>)> {
        let store = self.inner.controller.engine().store();
        let trigger = match Trigger::from_json(&rr.trigger) {
            Ok(t) => t,
            Err(e) => {
                // Validated when it was created; only a hand-edited row gets here.
                tracing::warn!(recurring_run = %rr.id, error = %e, "Stored trigger is invalid; the recurring run is not scheduled.");
                return Ok((Vec::new(), None));
            }
        };
        // `updated_at` changes only when the recurring run is enabled or
        // disabled, so for an enabled one it is when it was (re-)enabled.
        let state = FireState {
            created_at: rr.created_at,
            enabled_at: rr.updated_at,
            last_fired_at: rr.last_fired_at,
        };
        let due = trigger.due(&state, now, rr.no_catchup, MAX_CATCHUP);
        let mut last = rr.last_fired_at;
        if let Some(skip) = due.skip_to {
            if !store.set_last_fired(&rr.id, last, skip).await? {
                return Ok((Vec::new(), due.next));
            }
            tracing::warn!(
                recurring_run = %rr.id,
                skipped_through = %skip,
                cap = MAX_CATCHUP,
                "More missed slots than the catch-up cap; the older ones are skipped."
            );
            last = Some(skip);
        }
        let mut created = Vec::new();
        let mut pipeline = None;
        let limit = rr.max_concurrency.clamp(1, MAX_CONCURRENCY);
        for slot in due.slots {
            let active = store.count_active_runs(&rr.id).await?;
            if active >= limit {
                tracing::debug!(recurring_run = %rr.id, slot = %slot, active, "Slot waits: max_concurrency runs are active.");
                break;
            }
            let run = self.build_run(rr, slot, &mut pipeline).await;
            if !store.set_last_fired(&rr.id, last, slot).await? {
                tracing::debug!(recurring_run = %rr.id, slot = %slot, "Slot already fired elsewhere.");
                break;
            }
            last = Some(slot);
            store.insert_run(&run).await?;
            if let Some(eid) = &run.experiment_id {
                match store.touch_last_run(eid, run.created_at).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            tracing::info!(recurring_run = %rr.id, run = %run.id, scheduled_at = %slot, state = %run.state, "Recurring run fired.");
            created.push(run.id);
        }
        Ok((created, due.next))
    }

    /// The run for `slot`: PENDING, or FAILED with the reason when its
    /// pipeline or parameters cannot be used any more (a deleted version),
    /// so the user sees why the schedule produces nothing.
    async fn build_run(
        &self,
        rr: &RecurringRunRecord,
        slot: Timestamp,
        pipeline: &mut Option<std::result::Result<Pipeline, String>>,
    ) -> RunRecord {
        if pipeline.is_none() {
            *pipeline = Some(self.load_pipeline(rr).await.map_err(|e| e.to_string()));
        }
        let name = run_name(&rr.display_name, slot);
        let parameters: BTreeMap<String, Value> = rr
            .runtime_config
            .get("parameters")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let prepared = match pipeline {
            Some(Ok(p)) => {
                let req = SubmitRequest {
                    namespace: rr.namespace.clone(),
                    display_name: Some(name.clone()),
                    parameters: parameters.clone(),
                    options: RunOptions::in_current_dir(),
                };
                self.inner
                    .controller
                    .engine()
                    .prepare(p, req)
                    .map_err(|e| e.to_string())
            }
            Some(Err(e)) => Err(e.clone()),
            None => Err("the pipeline was not loaded".to_owned()),
        };
        let mut run = prepared.unwrap_or_else(|error| {
            tracing::warn!(recurring_run = %rr.id, slot = %slot, error = %error, "Recurring run cannot start its pipeline; recording a failed run.");
            let now = Timestamp::now();
            RunRecord {
                id: oxflow_core::new_id(),
                namespace: rr.namespace.clone(),
                display_name: name,
                spec: rr.spec.clone().unwrap_or(Value::Null),
                parameters: Value::Object(parameters.into_iter().collect()),
                state: RunState::Failed,
                error: Some(error),
                created_at: now,
                finished_at: Some(now),
                ..RunRecord::default()
            }
        });
        run.experiment_id = rr.experiment_id.clone();
        run.description = rr.description.clone();
        run.pipeline_id = rr.pipeline_id.clone();
        run.pipeline_version_id = rr.pipeline_version_id.clone();
        run.recurring_run_id = Some(rr.id.clone());
        run.scheduled_at = Some(slot);
        run
    }

    async fn load_pipeline(&self, rr: &RecurringRunRecord) -> Result<Pipeline> {
        let source = format!("recurring run {}", rr.id);
        if let Some(spec) = &rr.spec {
            return Pipeline::from_json(spec.clone(), &source);
        }
        let Some(vid) = &rr.pipeline_version_id else {
            return Err(PipelineError::invalid(
                &source,
                "pipeline_spec",
                "has neither a pipeline spec nor a pipeline version",
            ));
        };
        let store = self.inner.controller.engine().store();
        let version = store.get_pipeline_version(vid).await?.ok_or_else(|| {
            PipelineError::invalid(
                &source,
                "pipeline_version_reference.pipeline_version_id",
                format!("pipeline version {vid:?} no longer exists; create a new recurring run"),
            )
        })?;
        Pipeline::from_json(version.spec, &source)
    }
}

/// `<recurring run name>-<yyyymmddhhmmss>` of the slot, in UTC.
pub fn run_name(display_name: &str, slot: Timestamp) -> String {
    let digits: String = slot
        .to_rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("{display_name}-{digits}")
}

/// Completes when some run reaches a terminal state (capacity may have
/// freed up for a waiting slot), or when events were missed.
async fn run_finished(rx: &mut broadcast::Receiver<RunEvent>) {
    loop {
        match rx.recv().await {
            Ok(RunEvent::Run { state, .. }) if state.is_terminal() => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap_or_else(|| panic!("bad test time {s}"))
    }

    fn ts(list: &[Timestamp]) -> Vec<String> {
        list.iter().map(|t| t.to_rfc3339()).collect()
    }

    /// One case of the fire-time computation.
    struct Case<'a> {
        trigger: Value,
        created: &'a str,
        enabled: Option<&'a str>,
        last: Option<&'a str>,
        now: &'a str,
        no_catchup: bool,
    }

    impl<'a> Case<'a> {
        fn new(trigger: Value, created: &'a str, now: &'a str) -> Self {
            Self {
                trigger,
                created,
                enabled: None,
                last: None,
                now,
                no_catchup: false,
            }
        }

        fn due(&self, cap: usize) -> Due {
            let trigger = Trigger::from_json(&self.trigger).expect("valid trigger");
            let state = FireState {
                created_at: t(self.created),
                enabled_at: t(self.enabled.unwrap_or(self.created)),
                last_fired_at: self.last.map(t),
            };
            trigger.due(&state, t(self.now), self.no_catchup, cap)
        }
    }

    /// The due slots and the next wake-up of `case`.
    fn check(case: Case<'_>, slots: &[&str], next: Option<&str>) {
        let due = case.due(MAX_CATCHUP);
        assert_eq!(ts(&due.slots), slots, "slots of {}", case.trigger);
        assert_eq!(
            due.next.map(|t| t.to_rfc3339()).as_deref(),
            next,
            "next slot of {}",
            case.trigger
        );
        assert_eq!(due.skip_to, None);
    }

    fn cron(expr: &str) -> Value {
        json!({"cron_schedule": {"cron": expr}})
    }

    #[test]
    fn cron_with_seconds_and_question_mark() {
        // 2026-01-05 is a Monday; robfig counts days of week from Sunday = 0,
        // so 2-6 is Tuesday to Saturday.
        let case = Case::new(
            cron("0 0 9 ? * 2-6"),
            "2026-01-05T00:00:00Z",
            "2026-01-10T12:00:00Z",
        );
        check(
            case,
            &[
                "2026-01-06T09:00:00Z",
                "2026-01-07T09:00:00Z",
                "2026-01-08T09:00:00Z",
                "2026-01-09T09:00:00Z",
                "2026-01-10T09:00:00Z",
            ],
            Some("2026-01-13T09:00:00Z"),
        );
        let case = Case {
            no_catchup: true,
            ..Case::new(
                cron("0 0 9 ? * 2-6"),
                "2026-01-05T00:00:00Z",
                "2026-01-10T12:00:00Z",
            )
        };
        check(
            case,
            &["2026-01-10T09:00:00Z"],
            Some("2026-01-13T09:00:00Z"),
        );
    }

    #[test]
    fn cron_every_second_and_steps() {
        let every = Case::new(
            cron("*/1 * * * * *"),
            "2026-01-01T00:00:00.500Z",
            "2026-01-01T00:00:03.200Z",
        );
        check(
            every,
            &[
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:02Z",
                "2026-01-01T00:00:03Z",
            ],
            Some("2026-01-01T00:00:04Z"),
        );
        for expr in ["0/10 * * * * *", "*/10 * * * * *", "10-59/10 * * * * ?"] {
            let case = Case::new(cron(expr), "2026-01-01T00:00:00Z", "2026-01-01T00:00:35Z");
            check(
                case,
                &[
                    "2026-01-01T00:00:10Z",
                    "2026-01-01T00:00:20Z",
                    "2026-01-01T00:00:30Z",
                ],
                Some("2026-01-01T00:00:40Z"),
            );
        }
    }

    #[test]
    fn cron_names_descriptors_and_day_rules() {
        // Day of month and day of week both restricted: either matches (robfig, Vixie).
        let case = Case::new(
            cron("0 0 0 1 * MON"),
            "2026-01-01T00:00:01Z",
            "2026-02-02T00:00:00Z",
        );
        check(
            case,
            &[
                "2026-01-05T00:00:00Z",
                "2026-01-12T00:00:00Z",
                "2026-01-19T00:00:00Z",
                "2026-01-26T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-02-02T00:00:00Z",
            ],
            Some("2026-02-09T00:00:00Z"),
        );
        let case = Case::new(
            cron("@daily"),
            "2026-03-01T10:00:00Z",
            "2026-03-03T00:00:00Z",
        );
        check(
            case,
            &["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"],
            Some("2026-03-04T00:00:00Z"),
        );
        let case = Case::new(
            cron("@midnight"),
            "2026-03-01T10:00:00Z",
            "2026-03-01T23:00:00Z",
        );
        check(case, &[], Some("2026-03-02T00:00:00Z"));
        let case = Case::new(
            cron("30 15 10 * JAN-FEB *"),
            "2025-12-30T00:00:00Z",
            "2026-01-02T00:00:00Z",
        );
        check(
            case,
            &["2026-01-01T10:15:30Z"],
            Some("2026-01-02T10:15:30Z"),
        );
        // Leap days, across years (the UTC calendar conversion).
        let case = Case::new(
            cron("0 0 0 29 2 *"),
            "2026-01-01T00:00:00Z",
            "2028-03-01T00:00:00Z",
        );
        check(
            case,
            &["2028-02-29T00:00:00Z"],
            Some("2032-02-29T00:00:00Z"),
        );
    }

    #[test]
    fn start_end_last_fired_and_enabling() {
        let every_minute = || cron("0 * * * * *");
        // start_time later than creation: strictly after it, as KFP.
        let mut trig = every_minute();
        trig["cron_schedule"]["start_time"] = json!("2026-01-01T00:05:00Z");
        check(
            Case::new(trig, "2026-01-01T00:00:00Z", "2026-01-01T00:08:30Z"),
            &[
                "2026-01-01T00:06:00Z",
                "2026-01-01T00:07:00Z",
                "2026-01-01T00:08:00Z",
            ],
            Some("2026-01-01T00:09:00Z"),
        );
        // end_time is inclusive; nothing after it, not even a next wake-up.
        let mut trig = every_minute();
        trig["cron_schedule"]["end_time"] = json!("2026-01-01T00:03:00Z");
        check(
            Case::new(trig, "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"),
            &[
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:02:00Z",
                "2026-01-01T00:03:00Z",
            ],
            None,
        );
        // Resumes after the last fired slot.
        let case = Case {
            last: Some("2026-01-01T00:02:00Z"),
            ..Case::new(
                every_minute(),
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:04:10Z",
            )
        };
        check(
            case,
            &["2026-01-01T00:03:00Z", "2026-01-01T00:04:00Z"],
            Some("2026-01-01T00:05:00Z"),
        );
        // Slots while disabled are not back-filled after enabling.
        let case = Case {
            last: Some("2026-01-01T00:02:00Z"),
            enabled: Some("2026-01-01T00:05:30Z"),
            ..Case::new(
                every_minute(),
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:07:00Z",
            )
        };
        check(
            case,
            &["2026-01-01T00:06:00Z", "2026-01-01T00:07:00Z"],
            Some("2026-01-01T00:08:00Z"),
        );
        // Nothing due yet.
        check(
            Case::new(
                every_minute(),
                "2026-01-01T00:00:10Z",
                "2026-01-01T00:00:59Z",
            ),
            &[],
            Some("2026-01-01T00:01:00Z"),
        );
    }

    #[test]
    fn periodic() {
        let hourly = json!({"periodic_schedule": {"interval_second": 3600}});
        check(
            Case::new(
                hourly.clone(),
                "2026-01-01T00:00:00.250Z",
                "2026-01-01T03:30:00Z",
            ),
            &[
                "2026-01-01T01:00:00Z",
                "2026-01-01T02:00:00Z",
                "2026-01-01T03:00:00Z",
            ],
            Some("2026-01-01T04:00:00Z"),
        );
        // int64 as a string, as the generated models type it.
        let as_string = json!({"periodic_schedule": {"interval_second": "3600"}});
        check(
            Case {
                no_catchup: true,
                ..Case::new(as_string, "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z")
            },
            &["2026-01-01T05:00:00Z"],
            Some("2026-01-01T06:00:00Z"),
        );
        // The grid starts at start_time.
        let started = json!({"periodic_schedule": {
            "interval_second": 3600, "start_time": "2026-01-01T10:15:00Z",
            "end_time": "2026-01-01T13:15:00Z"}});
        check(
            Case::new(
                started.clone(),
                "2026-01-01T00:00:00Z",
                "2026-01-01T12:00:00Z",
            ),
            &["2026-01-01T11:15:00Z"],
            Some("2026-01-01T12:15:00Z"),
        );
        check(
            Case {
                last: Some("2026-01-01T11:15:00Z"),
                ..Case::new(started, "2026-01-01T00:00:00Z", "2026-01-01T20:00:00Z")
            },
            &["2026-01-01T12:15:00Z", "2026-01-01T13:15:00Z"],
            None,
        );
        // A run fired off-grid (clock skew, an older Oxflow) does not shift the grid.
        check(
            Case {
                last: Some("2026-01-01T01:00:07Z"),
                ..Case::new(hourly, "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z")
            },
            &["2026-01-01T02:00:00Z"],
            Some("2026-01-01T03:00:00Z"),
        );
    }

    #[test]
    fn catch_up_is_capped_at_the_newest_slots() {
        // 600 missed every-second slots, cap 100: the newest 100 fire.
        let due = Case::new(
            cron("* * * * * *"),
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:10:00Z",
        )
        .due(100);
        assert_eq!(due.slots.len(), 100);
        assert_eq!(due.slots[0].to_rfc3339(), "2026-01-01T00:08:21Z");
        assert_eq!(due.slots[99].to_rfc3339(), "2026-01-01T00:10:00Z");
        assert_eq!(
            due.skip_to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-01T00:08:20Z")
        );
        let due = Case::new(
            json!({"periodic_schedule": {"interval_second": 1}}),
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:10:00Z",
        )
        .due(100);
        assert_eq!(due.slots.len(), 100);
        assert_eq!(due.slots[0].to_rfc3339(), "2026-01-01T00:08:21Z");
        assert_eq!(
            due.skip_to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-01T00:08:20Z")
        );
        // Exactly the cap: nothing skipped.
        let due = Case::new(
            cron("* * * * * *"),
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:01:40Z",
        )
        .due(100);
        assert_eq!((due.slots.len(), due.skip_to), (100, None));
    }

    /// The field an invalid trigger is reported on, and a word of the message.
    fn check_err(trigger: Value, field: &str, says: &str) {
        let e = Trigger::from_json(&trigger).expect_err(&trigger.to_string());
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(says), "{e} should say {says:?}");
    }

    #[test]
    fn invalid_triggers_name_the_field() {
        let cron_field = "trigger.cron_schedule.cron";
        check_err(cron("0 0 * * *"), cron_field, "6");
        check_err(cron("61 * * * * *"), cron_field, "not a valid cron");
        check_err(cron("0 0 9 ? * 2-6 2030"), cron_field, "7 fields");
        check_err(cron(""), cron_field, "required");
        check_err(json!({"cron_schedule": {}}), cron_field, "required");
        check_err(cron("@every 1h"), cron_field, "periodic_schedule");
        check_err(cron("0 0 0 30 2 *"), cron_field, "never matches");
        let interval = "trigger.periodic_schedule.interval_second";
        check_err(
            json!({"periodic_schedule": {"interval_second": 0}}),
            interval,
            "between 1",
        );
        check_err(
            json!({"periodic_schedule": {"interval_second": "soon"}}),
            interval,
            "integer",
        );
        check_err(
            json!({"periodic_schedule": {"interval_second": 1.5}}),
            interval,
            "integer",
        );
        check_err(json!({"periodic_schedule": {}}), interval, "required");
        check_err(json!({}), "trigger", "required");
        check_err(Value::Null, "trigger", "required");
        check_err(
            json!({"cron_schedule": {"cron": "* * * * * *"}, "periodic_schedule": {"interval_second": 1}}),
            "trigger",
            "not both",
        );
        check_err(
            json!({"periodic_schedule": {"interval_second": 1, "start_time": "tomorrow"}}),
            "trigger.periodic_schedule.start_time",
            "RFC 3339",
        );
        check_err(
            json!({"cron_schedule": {"cron": "* * * * * *",
                "start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}}),
            "trigger.cron_schedule.end_time",
            "before start_time",
        );
        assert_eq!(check_max_concurrency(1), Ok(1));
        assert_eq!(check_max_concurrency(10), Ok(10));
        for bad in [0, 11, -1] {
            let e = check_max_concurrency(bad).unwrap_err();
            assert_eq!(e.field, "max_concurrency");
        }
    }

    #[test]
    fn trigger_json_round_trip() {
        for v in [
            json!({"cron_schedule": {"cron": "0 0 2 * * *", "start_time": "2026-01-01T00:00:00Z"}}),
            json!({"periodic_schedule": {"interval_second": 3600, "end_time": "2026-01-01T00:00:00Z"}}),
        ] {
            assert_eq!(Trigger::from_json(&v).unwrap().to_json(), v);
        }
        // Unset times as KFP renders them are dropped; strings become numbers.
        let v = json!({"periodic_schedule": {"interval_second": "60",
            "start_time": "1970-01-01T00:00:00Z", "end_time": ""}});
        assert_eq!(
            Trigger::from_json(&v).unwrap().to_json(),
            json!({"periodic_schedule": {"interval_second": 60}})
        );
    }

    #[test]
    fn utc_calendar_conversion() {
        for days in (-1_000_000..1_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            let expect = Timestamp(days * 86_400_000).to_rfc3339();
            if (1..10_000).contains(&y) {
                assert!(expect.starts_with(&format!("{y:04}-{m:02}-{d:02}")));
            }
        }
        assert_eq!(UtcSecond(0).civil_weekday(), Weekday::Thursday);
        assert_eq!(UtcSecond(-86_400).civil_weekday(), Weekday::Wednesday);
    }

    #[test]
    fn run_names_carry_the_slot() {
        assert_eq!(
            run_name("nightly", t("2026-11-28T09:20:24Z")),
            "nightly-20261128092024"
        );
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers() {
        let clock = Arc::new(ManualClock::new(t("2026-01-01T00:00:00Z")));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move {
            c.sleep_until(t("2026-01-01T00:01:00Z")).await;
            c.now()
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        assert_eq!(sleeper.await.unwrap(), t("2026-01-01T00:01:00Z"));
    }
}

/// The scheduler over a real SQLite store, driven by a [`ManualClock`]:
/// runs are created but never executed (the controller is not started), so
/// they stay PENDING, i.e. active, until a test finishes them.
#[cfg(test)]
mod scheduler_tests {
    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use oxflow_artifacts::ArtifactStore;
    use oxflow_core::Namespace;
    use oxflow_runtime::{LocalConfig, LocalRuntime};
    use oxflow_store::{ExperimentRecord, Sort, StorageState, Store};

    const T0: &str = "2026-01-01T00:00:00Z";

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap_or_else(|| panic!("bad test time {s}"))
    }

    fn secs(n: i64) -> Timestamp {
        Timestamp(t(T0).millis() + n * 1000)
    }

    struct Env {
        dir: tempfile::TempDir,
        store: Store,
        clock: Arc<ManualClock>,
    }

    impl Env {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_in_dir(dir.path()).await.unwrap();
            Self {
                dir,
                store,
                clock: Arc::new(ManualClock::new(t(T0))),
            }
        }

        /// A scheduler with its own engine and controller, as a second
        /// `oxflow up` (or the same one after a restart) would have.
        fn scheduler(&self) -> RecurringRunScheduler {
            let dir = self.dir.path();
            let runtime = LocalRuntime::new(LocalConfig {
                scratch_dir: dir.join("scratch"),
                ..Default::default()
            });
            let engine = Engine::new(
                self.store.clone(),
                Arc::new(runtime),
                ArtifactStore::new(dir.join("artifacts")),
                EngineConfig {
                    data_dir: dir.to_path_buf(),
                    max_parallel: 1,
                    python: None,
                },
            );
            RecurringRunScheduler::new(RunController::new(engine, 1), self.clock.clone())
        }

        async fn add(&self, id: &str, trigger: Value, max_concurrency: i64, no_catchup: bool) {
            let rr = RecurringRunRecord {
                id: id.to_owned(),
                namespace: Namespace::default(),
                display_name: format!("{id}-name"),
                description: String::new(),
                experiment_id: None,
                pipeline_id: None,
                pipeline_version_id: None,
                spec: Some(
                    Pipeline::from_json(spec(), "test")
                        .unwrap()
                        .to_stored_json(),
                ),
                runtime_config: json!({"parameters": {"x": 7}}),
                trigger,
                max_concurrency,
                no_catchup,
                enabled: true,
                created_at: t(T0),
                updated_at: t(T0),
                last_fired_at: None,
            };
            self.store.insert_recurring_run(&rr).await.unwrap();
        }

        /// The runs `rr` created, by slot.
        async fn runs(&self, rr: &str) -> Vec<RunRecord> {
            let q = ListQuery {
                filters: vec![Filter::new(
                    "recurring_run_id",
                    FilterOp::Equals,
                    FilterValue::String(rr.to_owned()),
                )],
                sort: Sort::asc("created_at"),
                page_size: MAX_PAGE_SIZE,
                ..ListQuery::default()
            };
            let mut runs = self.store.list_runs_page(&q).await.unwrap().items;
            runs.sort_by_key(|r| r.scheduled_at);
            runs
        }

        /// The slots of `rr`'s runs, as seconds after T0.
        async fn slots(&self, rr: &str) -> Vec<i64> {
            self.runs(rr)
                .await
                .iter()
                .map(|r| (r.scheduled_at.unwrap().millis() - t(T0).millis()) / 1000)
                .collect()
        }

        async fn finish_all(&self, rr: &str) {
            for mut run in self.runs(rr).await {
                if !run.state.is_terminal() {
                    run.state = RunState::Succeeded;
                    run.finished_at = Some(Timestamp::now());
                    self.store.update_run(&run).await.unwrap();
                }
            }
        }

        fn at(&self, n: i64) {
            self.clock.set(secs(n));
        }
    }

    /// One container task with an integer parameter `x`.
    fn spec() -> Value {
        json!({
            "components": {"comp-echo": {
                "executorLabel": "exec-echo",
                "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER"}}},
            }},
            "deploymentSpec": {"executors": {"exec-echo": {"container": {
                "image": "alpine", "command": ["true"], "args": ["{{$.inputs.parameters['x']}}"],
            }}}},
            "pipelineInfo": {"name": "echo"},
            "root": {
                "dag": {"tasks": {"echo": {
                    "componentRef": {"name": "comp-echo"},
                    "inputs": {"parameters": {"x": {"componentInputParameter": "x"}}},
                    "taskInfo": {"name": "echo"},
                }}},
                "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1}}},
            },
            "schemaVersion": "2.1.0",
            "sdkVersion": "kfp-2.17.3",
        })
    }

    fn every_second() -> Value {
        json!({"cron_schedule": {"cron": "* * * * * *"}})
    }

    fn every_minute() -> Value {
        json!({"periodic_schedule": {"interval_second": 60}})
    }

    #[tokio::test]
    async fn fires_on_schedule() {
        let env = Env::new().await;
        let s = env.scheduler();
        env.add("rr", every_minute(), 10, false).await;
        let report = s.pass().await.unwrap();
        assert!(report.created.is_empty());
        assert_eq!(report.next_wake, Some(secs(60)));
        env.at(59);
        assert!(s.pass().await.unwrap().created.is_empty());
        env.at(60);
        let report = s.pass().await.unwrap();
        assert_eq!(report.created.len(), 1);
        assert_eq!(report.next_wake, Some(secs(120)));
        let run = &env.runs("rr").await[0];
        assert_eq!(run.id, report.created[0]);
        assert_eq!(run.display_name, "rr-name-20260101000100");
        assert_eq!(run.recurring_run_id.as_deref(), Some("rr"));
        assert_eq!(run.scheduled_at, Some(secs(60)));
        assert_eq!(run.state, RunState::Pending);
        assert_eq!(run.parameters, json!({"x": 7}));
        assert_eq!(run.pipeline_name, "echo");
        // The same instant again fires nothing.
        assert!(s.pass().await.unwrap().created.is_empty());
        env.at(200);
        assert_eq!(s.pass().await.unwrap().created.len(), 2);
        assert_eq!(env.slots("rr").await, [60, 120, 180]);
        let rr = env.store.get_recurring_run("rr").await.unwrap().unwrap();
        assert_eq!(rr.last_fired_at, Some(secs(180)));
    }

    #[tokio::test]
    async fn max_concurrency_delays_slots() {
        let env = Env::new().await;
        let s = env.scheduler();
        env.add("rr", every_second(), 2, false).await;
        env.at(5);
        assert_eq!(s.pass().await.unwrap().created.len(), 2);
        assert!(s.pass().await.unwrap().created.is_empty(), "two are active");
        // One finishes: the next waiting slot fires (delayed, not skipped).
        let mut first = env.runs("rr").await.remove(0);
        first.state = RunState::Succeeded;
        env.store.update_run(&first).await.unwrap();
        assert_eq!(s.pass().await.unwrap().created.len(), 1);
        assert_eq!(env.slots("rr").await, [1, 2, 3]);
        env.finish_all("rr").await;
        assert_eq!(s.pass().await.unwrap().created.len(), 2);
        assert_eq!(env.slots("rr").await, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn no_catchup_supersedes_a_waiting_slot() {
        let env = Env::new().await;
        let s = env.scheduler();
        env.add("rr", every_second(), 1, true).await;
        env.at(3);
        assert_eq!(s.pass().await.unwrap().created.len(), 1);
        env.at(10);
        assert!(s.pass().await.unwrap().created.is_empty());
        env.finish_all("rr").await;
        assert_eq!(s.pass().await.unwrap().created.len(), 1);
        assert_eq!(env.slots("rr").await, [3, 10]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_schedulers_never_fire_a_slot_twice() {
        let env = Env::new().await;
        let (a, b) = (env.scheduler(), env.scheduler());
        env.add("rr", every_second(), MAX_CONCURRENCY, false).await;
        env.add("other", every_minute(), MAX_CONCURRENCY, false)
            .await;
        for round in 1..=6 {
            env.at(round * 30);
            let (ra, rb) = tokio::join!(a.pass(), b.pass());
            let created = ra.unwrap().created.len() + rb.unwrap().created.len();
            assert!(created > 0, "round {round} fired nothing");
            env.finish_all("rr").await;
            env.finish_all("other").await;
            // Whatever one left (lost races, concurrency) the next pass takes.
            while !a.pass().await.unwrap().created.is_empty() {
                env.finish_all("rr").await;
            }
        }
        let slots = env.slots("rr").await;
        assert_eq!(
            slots,
            (1..=180).collect::<Vec<_>>(),
            "each slot exactly once"
        );
        assert_eq!(env.slots("other").await, [60, 120, 180]);
    }

    #[tokio::test]
    async fn restart_catches_up_as_configured() {
        let env = Env::new().await;
        env.add("catchup", every_minute(), MAX_CONCURRENCY, false)
            .await;
        env.add("latest", every_minute(), MAX_CONCURRENCY, true)
            .await;
        let first = env.scheduler();
        env.at(60);
        assert_eq!(first.pass().await.unwrap().created.len(), 2);
        drop(first);
        // Down for five minutes; a new process starts.
        env.at(60 + 5 * 60 + 30);
        let second = env.scheduler();
        second.pass().await.unwrap();
        assert_eq!(env.slots("catchup").await, [60, 120, 180, 240, 300, 360]);
        assert_eq!(env.slots("latest").await, [60, 360]);
    }

    #[tokio::test]
    async fn catch_up_is_capped() {
        let env = Env::new().await;
        env.add("rr", every_second(), MAX_CONCURRENCY, false).await;
        env.at(1000);
        let s = env.scheduler();
        assert_eq!(
            s.pass().await.unwrap().created.len(),
            MAX_CONCURRENCY as usize
        );
        let first = 1000 - MAX_CATCHUP as i64 + 1;
        assert_eq!(
            env.slots("rr").await,
            (first..first + MAX_CONCURRENCY).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn disabled_runs_do_not_fire_and_enabling_does_not_backfill() {
        let env = Env::new().await;
        let s = env.scheduler();
        env.add("rr", every_minute(), MAX_CONCURRENCY, false).await;
        env.store
            .set_recurring_run_enabled("rr", false, secs(1))
            .await
            .unwrap();
        env.at(600);
        let report = s.pass().await.unwrap();
        assert!(report.created.is_empty());
        assert_eq!(report.next_wake, None);
        env.store
            .set_recurring_run_enabled("rr", true, secs(630))
            .await
            .unwrap();
        env.at(700);
        s.pass().await.unwrap();
        assert_eq!(env.slots("rr").await, [660]);
    }

    #[tokio::test]
    async fn end_time_stops_it() {
        let env = Env::new().await;
        let s = env.scheduler();
        let mut trigger = every_minute();
        trigger["periodic_schedule"]["end_time"] = json!(secs(150).to_rfc3339());
        env.add("rr", trigger, MAX_CONCURRENCY, false).await;
        env.at(3600);
        let report = s.pass().await.unwrap();
        assert_eq!(report.created.len(), 2);
        assert_eq!(report.next_wake, None);
        assert_eq!(env.slots("rr").await, [60, 120]);
    }

    #[tokio::test]
    async fn experiment_and_missing_version() {
        let env = Env::new().await;
        let s = env.scheduler();
        let exp = ExperimentRecord {
            id: "exp".into(),
            namespace: Namespace::default(),
            display_name: "exp".into(),
            description: String::new(),
            created_at: t(T0),
            storage_state: StorageState::Available,
            last_run_created_at: None,
        };
        env.store.insert_experiment(&exp).await.unwrap();
        env.add("rr", every_minute(), 1, false).await;
        // A recurring run whose pipeline version was deleted records why.
        let mut gone = env.store.get_recurring_run("rr").await.unwrap().unwrap();
        gone.id = "gone".into();
        gone.spec = None;
        gone.experiment_id = Some("exp".into());
        gone.pipeline_id = Some("p".into());
        gone.pipeline_version_id = Some("deleted".into());
        env.store.insert_recurring_run(&gone).await.unwrap();
        env.at(60);
        assert_eq!(s.pass().await.unwrap().created.len(), 2);
        let failed = &env.runs("gone").await[0];
        assert_eq!(failed.state, RunState::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .unwrap()
                .contains("no longer exists"),
            "{:?}",
            failed.error
        );
        assert_eq!(failed.experiment_id.as_deref(), Some("exp"));
        assert_eq!(failed.pipeline_version_id.as_deref(), Some("deleted"));
        let exp = env.store.get_experiment("exp").await.unwrap().unwrap();
        assert!(exp.last_run_created_at.is_some());
        // A failed run is not active: the next slot fires despite max_concurrency 1.
        env.at(120);
        s.pass().await.unwrap();
        assert_eq!(env.slots("gone").await, [60, 120]);
    }
}
