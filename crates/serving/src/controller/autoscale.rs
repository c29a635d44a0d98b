//! Knative's autoscaler (the KPA that KServe's Knative mode uses), for the
//! replicas Oxflow runs itself: the copies of a command (custom predictors,
//! transformers, explainers) and the worker processes of a scikit-learn
//! model. (ONNX, XGBoost and LightGBM models run in this process, on every
//! core already: for them there is nothing to scale.)
//!
//! It follows Knative's algorithm so that a KServe spec scales here as it
//! would there: the observed concurrency (or requests per second) is
//! averaged over a stable window (60 s) and a panic window (10 % of it);
//! the wanted replicas are the average over the target per replica, where
//! the target is `scaleTarget` (else `containerConcurrency`, else 100 —
//! 200 for rps) times the target utilisation (70 %). When the panic
//! window's average asks for twice the ready replicas the autoscaler
//! panics: it scales up at once and does not scale down until a stable
//! window passes without another panic. Scale-down is at most halving per
//! decision. `minReplicas`/`maxReplicas` bound the result; an unset
//! `maxReplicas` (unlimited in Knative) is the machine's core count here,
//! since every replica is a process on this machine.
//!
//! Knative's per-revision annotations are honoured, from the component's
//! `annotations` or the service's: `autoscaling.knative.dev/window`,
//! `…/target`, `…/metric`, `…/target-utilization-percentage`,
//! `…/panic-window-percentage` and `…/panic-threshold-percentage`.
//! `scaleMetric: cpu` and `memory` are the HPA's metrics (KServe's
//! Standard mode), which need the pods' resource usage; locally the
//! autoscaler then scales on concurrency with the default target.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oxflow_inference::{ModelState, Repository, Workers};

use crate::spec::{ComponentExtension, ScaleMetric};

/// Knative's `container-concurrency-target-default`.
const DEFAULT_CONCURRENCY_TARGET: f64 = 100.0;
/// Knative's `requests-per-second-target-default`.
const DEFAULT_RPS_TARGET: f64 = 200.0;
/// Knative's `container-concurrency-target-percentage`.
const DEFAULT_UTILIZATION: f64 = 0.7;
/// Knative's `panic-window-percentage`.
const DEFAULT_PANIC_PERCENT: f64 = 10.0;
/// Knative's `panic-threshold-percentage`.
const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;
/// Knative's `max-scale-down-rate`.
const MAX_SCALE_DOWN_RATE: f64 = 2.0;
/// Knative's `max-scale-up-rate`.
const MAX_SCALE_UP_RATE: f64 = 1000.0;
/// The bounds Knative puts on `autoscaling.knative.dev/window`.
const MIN_WINDOW: Duration = Duration::from_secs(6);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

const ANNOTATION: &str = "autoscaling.knative.dev/";

/// The controller-wide autoscaler settings (Knative's `config-autoscaler`).
#[derive(Debug, Clone, Copy)]
pub struct AutoscaleConfig {
    /// How often concurrency is sampled and replicas decided.
    pub tick: Duration,
    /// The stable window when no annotation sets one.
    pub stable_window: Duration,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        AutoscaleConfig {
            tick: Duration::from_millis(200),
            stable_window: Duration::from_secs(60),
        }
    }
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    Concurrency,
    Rps,
}

/// How one component scales, from its spec.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Scaling {
    pub metric: Metric,
    /// The metric's target per replica, utilisation applied.
    pub target: f64,
    pub min: usize,
    pub max: usize,
    pub stable_window: Duration,
    pub panic_window: Duration,
    /// Panic when the panic window asks for this many times the ready
    /// replicas.
    pub panic_threshold: f64,
}

impl Scaling {
    /// The scaling of `component` (with the service's `annotations` under
    /// the component's own), or `None` when there is nothing to decide
    /// (the minimum is the maximum). A malformed annotation is an error
    /// naming it.
    pub(super) fn new(
        component: &ComponentExtension,
        service_annotations: &BTreeMap<String, String>,
        config: &AutoscaleConfig,
        cores: usize,
    ) -> Result<Option<Scaling>, String> {
        let annotation = |name: &str| {
            let key = format!("{ANNOTATION}{name}");
            component
                .annotations
                .get(&key)
                .or_else(|| service_annotations.get(&key))
                .map(|v| (key, v.trim().to_owned()))
        };
        let number = |name: &str| -> Result<Option<f64>, String> {
            match annotation(name) {
                None => Ok(None),
                Some((key, v)) => match v.parse::<f64>() {
                    Ok(n) if n.is_finite() && n > 0.0 => Ok(Some(n)),
                    _ => Err(format!("annotation {key}: {v:?} is not a positive number")),
                },
            }
        };
        let min = (component.min_replicas as usize).max(1);
        let max = match component.max_replicas {
            Some(m) => m.get() as usize,
            None => cores.max(min),
        };
        let metric = match annotation("metric") {
            Some((_, v)) if v == "rps" => Metric::Rps,
            Some((_, v)) if v == "concurrency" => Metric::Concurrency,
            Some((key, v)) => {
                return Err(format!(
                    "annotation {key}: {v:?} is not a metric the local autoscaler knows; use concurrency or rps"
                ));
            }
            None => match component.scale_metric {
                Some(ScaleMetric::Rps) => Metric::Rps,
                _ => Metric::Concurrency,
            },
        };
        // scaleTarget of cpu or memory is a resource target, not a load one.
        let spec_target = component
            .scale_target
            .filter(|_| {
                matches!(
                    component.scale_metric,
                    None | Some(ScaleMetric::Concurrency) | Some(ScaleMetric::Rps)
                )
            })
            .map(|t| f64::from(t.get()));
        let hard_limit = component.container_concurrency.map(|c| f64::from(c.get()));
        let target = number("target")?.or(spec_target);
        let target = match metric {
            Metric::Rps => target.unwrap_or(DEFAULT_RPS_TARGET),
            // Knative caps a soft target at the hard limit.
            Metric::Concurrency => match (target, hard_limit) {
                (Some(t), Some(l)) => t.min(l),
                (Some(t), None) => t,
                (None, Some(l)) => l,
                (None, None) => DEFAULT_CONCURRENCY_TARGET,
            },
        };
        let utilization = match number("target-utilization-percentage")? {
            Some(p) => (p / 100.0).min(1.0),
            None => DEFAULT_UTILIZATION,
        };
        let stable_window = match annotation("window") {
            None => config.stable_window,
            Some((key, v)) => {
                let w = parse_duration(&v)
                    .ok_or_else(|| format!("annotation {key}: {v:?} is not a duration like 60s"))?;
                if !(MIN_WINDOW..=MAX_WINDOW).contains(&w) {
                    return Err(format!(
                        "annotation {key}: {v} is outside Knative's bounds of 6s to 1h"
                    ));
                }
                w
            }
        };
        let panic_percent = number("panic-window-percentage")?.unwrap_or(DEFAULT_PANIC_PERCENT);
        let panic_threshold =
            number("panic-threshold-percentage")?.map_or(DEFAULT_PANIC_THRESHOLD, |p| p / 100.0);
        if max <= min {
            return Ok(None);
        }
        Ok(Some(Scaling {
            metric,
            target: (target * utilization).max(0.01),
            min,
            max,
            stable_window,
            panic_window: stable_window.mul_f64((panic_percent / 100.0).clamp(0.01, 1.0)),
            panic_threshold,
        }))
    }
}

/// `60s`, `1m`, `1m30s`, `500ms`: the Go durations Knative's annotations use.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * unit).ok()?;
    }
    Some(total)
}

/// Counts one component's requests: those in flight and all so far.
#[derive(Debug, Default)]
pub(super) struct Meter {
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

/// A request in flight until dropped.
pub(super) struct Entered(Arc<Meter>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Meter {
    pub(super) fn enter(self: &Arc<Self>) -> Entered {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Entered(self.clone())
    }

    fn read(&self) -> (usize, u64) {
        (
            self.in_flight.load(Ordering::Acquire),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

/// One observation.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    in_flight: usize,
    requests: u64,
}

/// Knative's decider: the samples of the stable window and the panic state.
#[derive(Debug)]
pub(super) struct Decider {
    scaling: Scaling,
    samples: VecDeque<Sample>,
    /// When the autoscaler last found itself over the panic threshold.
    panicking_since: Option<Instant>,
    /// The most replicas asked for during this panic (never less while it lasts).
    panic_replicas: usize,
}

impl Decider {
    pub(super) fn new(scaling: Scaling) -> Decider {
        Decider {
            scaling,
            samples: VecDeque::new(),
            panicking_since: None,
            panic_replicas: 0,
        }
    }

    /// Records what the meter shows now.
    pub(super) fn observe(&mut self, at: Instant, meter: &Meter) {
        let (in_flight, requests) = meter.read();
        self.record(at, in_flight, requests);
    }

    fn record(&mut self, at: Instant, in_flight: usize, requests: u64) {
        self.samples.push_back(Sample {
            at,
            in_flight,
            requests,
        });
        while self
            .samples
            .front()
            .is_some_and(|s| at.duration_since(s.at) > self.scaling.stable_window)
        {
            self.samples.pop_front();
        }
    }

    /// The metric averaged over the last `window`.
    fn average(&self, now: Instant, window: Duration) -> f64 {
        let inside: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| now.duration_since(s.at) <= window)
            .collect();
        let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
            return 0.0;
        };
        match self.scaling.metric {
            Metric::Concurrency => {
                inside.iter().map(|s| s.in_flight as f64).sum::<f64>() / inside.len() as f64
            }
            Metric::Rps => {
                let span = last.at.duration_since(first.at).as_secs_f64();
                if span <= 0.0 {
                    return 0.0;
                }
                (last.requests - first.requests) as f64 / span
            }
        }
    }

    /// How many replicas there should be, given how many are ready.
    pub(super) fn decide(&mut self, now: Instant, ready: usize) -> usize {
        let s = &self.scaling;
        let ready = ready.max(1);
        let max_up = (MAX_SCALE_UP_RATE * ready as f64).ceil() as usize;
        let max_down = (ready as f64 / MAX_SCALE_DOWN_RATE).floor() as usize;
        let want = |value: f64| ((value / s.target).ceil() as usize).clamp(max_down, max_up);
        let stable = want(self.average(now, s.stable_window));
        let panic = want(self.average(now, s.panic_window));
        let over = panic as f64 / ready as f64 >= s.panic_threshold;
        if over {
            if self.panicking_since.is_none() {
                tracing::info!(
                    wanted = panic,
                    ready,
                    "Panic: scaling up on the panic window."
                );
            }
            self.panicking_since = Some(now);
        } else if self
            .panicking_since
            .is_some_and(|t| now.duration_since(t) > s.stable_window)
        {
            self.panicking_since = None;
            self.panic_replicas = 0;
        }
        let wanted = if self.panicking_since.is_some() {
            self.panic_replicas = self.panic_replicas.max(panic).max(ready);
            self.panic_replicas
        } else {
            stable
        };
        wanted.clamp(s.min, s.max)
    }
}

/// Something the autoscaler resizes.
pub(super) trait Scalable: Send + Sync {
    /// The replicas running now and how many of them are ready.
    fn counts(&self) -> (usize, usize);
    /// What the autoscaler last asked for.
    fn wanted(&self) -> usize;
    /// Starts or stops replicas until there are `count`.
    fn scale_to(self: Arc<Self>, count: usize);
}

/// The worker processes of a model revision (scikit-learn), reached
/// through its repository: the model in it may be reloaded or scaled to
/// zero, and then has no workers to count or resize.
pub(super) struct ModelWorkers {
    repository: Arc<Repository>,
    model: String,
    wanted: AtomicUsize,
}

impl ModelWorkers {
    pub(super) fn new(repository: Arc<Repository>, model: String, initial: usize) -> ModelWorkers {
        ModelWorkers {
            repository,
            model,
            wanted: AtomicUsize::new(initial),
        }
    }

    fn with_workers<T>(&self, f: impl FnOnce(&dyn Workers) -> T) -> Option<T> {
        match self.repository.state(&self.model) {
            Some(ModelState::Ready(m)) => m.workers().map(f),
            _ => None,
        }
    }
}

impl Scalable for ModelWorkers {
    fn counts(&self) -> (usize, usize) {
        self.with_workers(|w| {
            let c = w.counts();
            (c.ready + c.starting, c.ready)
        })
        .unwrap_or((0, 0))
    }

    fn wanted(&self) -> usize {
        self.wanted.load(Ordering::Acquire)
    }

    fn scale_to(self: Arc<Self>, count: usize) {
        self.wanted.store(count, Ordering::Release);
        self.with_workers(|w| w.resize(count));
    }
}

/// Runs the autoscaler of `target` every `tick` until `target` is gone
/// (its revision was dropped).
pub(super) fn spawn(
    target: std::sync::Weak<dyn Scalable>,
    meter: Arc<Meter>,
    mut decider: Decider,
    tick: Duration,
    name: String,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let Some(target) = target.upgrade() else {
                return;
            };
            let now = Instant::now();
            decider.observe(now, &meter);
            let (running, ready) = target.counts();
            // Nothing runs while a model loads or is scaled to zero: there
            // is nothing to resize until it is back.
            if running == 0 {
                continue;
            }
            let wanted = decider.decide(now, ready);
            if wanted != running {
                tracing::info!(revision = %name, from = running, to = wanted, ready, "Autoscaling.");
                target.scale_to(wanted);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn scaling(edit: impl FnOnce(&mut ComponentExtension)) -> Option<Scaling> {
        let mut c = ComponentExtension::default();
        edit(&mut c);
        Scaling::new(&c, &BTreeMap::new(), &AutoscaleConfig::default(), 4).unwrap()
    }

    #[test]
    fn targets_follow_knative() {
        // Defaults: concurrency 100 at 70 %, up to the core count.
        let s = scaling(|_| {}).unwrap();
        assert_eq!((s.metric, s.min, s.max), (Metric::Concurrency, 1, 4));
        assert!((s.target - 70.0).abs() < 1e-9);
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        // containerConcurrency is the target when scaleTarget is absent,
        // and caps it when present.
        let s = scaling(|c| c.container_concurrency = NonZeroU32::new(10)).unwrap();
        assert!((s.target - 7.0).abs() < 1e-9);
        let s = scaling(|c| {
            c.container_concurrency = NonZeroU32::new(2);
            c.scale_target = NonZeroU32::new(5);
        })
        .unwrap();
        assert!((s.target - 1.4).abs() < 1e-9);
        let s = scaling(|c| {
            c.scale_metric = Some(ScaleMetric::Rps);
            c.scale_target = NonZeroU32::new(10);
            c.max_replicas = NonZeroU32::new(8);
        })
        .unwrap();
        assert_eq!((s.metric, s.max), (Metric::Rps, 8));
        assert!((s.target - 7.0).abs() < 1e-9);
        // cpu's target is a utilisation: the load target is the default.
        let s = scaling(|c| {
            c.scale_metric = Some(ScaleMetric::Cpu);
            c.scale_target = NonZeroU32::new(80);
        })
        .unwrap();
        assert_eq!(s.metric, Metric::Concurrency);
        assert!((s.target - 70.0).abs() < 1e-9);
        // Nothing to decide when the bounds meet.
        assert_eq!(
            scaling(|c| {
                c.min_replicas = 2;
                c.max_replicas = NonZeroU32::new(2);
            }),
            None
        );
        assert_eq!(scaling(|c| c.min_replicas = 4), None);
    }

    #[test]
    fn annotations_override_and_bad_ones_are_named() {
        let annotations: BTreeMap<String, String> = [
            ("autoscaling.knative.dev/window", "10s"),
            ("autoscaling.knative.dev/target", "4"),
            (
                "autoscaling.knative.dev/target-utilization-percentage",
                "50",
            ),
            ("autoscaling.knative.dev/metric", "rps"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = Scaling::new(
            &ComponentExtension::default(),
            &annotations,
            &AutoscaleConfig::default(),
            2,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.metric, Metric::Rps);
        assert!((s.target - 2.0).abs() < 1e-9);
        assert_eq!(s.stable_window, Duration::from_secs(10));
        assert_eq!(s.panic_window, Duration::from_secs(1));
        for (key, value, says) in [
            ("window", "2s", "outside Knative's bounds"),
            ("window", "soon", "not a duration"),
            ("target", "-1", "not a positive number"),
            ("metric", "cpu", "concurrency or rps"),
        ] {
            let mut c = ComponentExtension::default();
            c.annotations
                .insert(format!("autoscaling.knative.dev/{key}"), value.to_owned());
            let e = Scaling::new(&c, &BTreeMap::new(), &AutoscaleConfig::default(), 2).unwrap_err();
            assert!(
                e.contains(&format!("autoscaling.knative.dev/{key}")) && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "60", "s", "1x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    fn decider(max: usize) -> Decider {
        Decider::new(Scaling {
            metric: Metric::Concurrency,
            target: 1.0,
            min: 1,
            max,
            stable_window: Duration::from_secs(10),
            panic_window: Duration::from_secs(1),
            panic_threshold: 2.0,
        })
    }

    /// Feeds `in_flight` every 100 ms for `secs` from `t`; returns the time after.
    fn feed(d: &mut Decider, t: Instant, secs: f64, in_flight: usize) -> Instant {
        let mut at = t;
        for _ in 0..(secs * 10.0) as usize {
            at += Duration::from_millis(100);
            d.record(at, in_flight, 0);
        }
        at
    }

    #[test]
    fn a_burst_panics_up_at_once_and_holds_for_a_stable_window() {
        let mut d = decider(10);
        let t0 = Instant::now();
        let t = feed(&mut d, t0, 10.0, 1);
        assert_eq!(d.decide(t, 1), 1, "one in flight, target one");
        // A burst of 4: the panic window sees it within a second, while
        // the stable window's average is still low.
        let t = feed(&mut d, t, 1.0, 4);
        assert_eq!(d.decide(t, 1), 4);
        // The load goes away: no scaling down while panicking…
        let t = feed(&mut d, t, 5.0, 0);
        assert_eq!(d.decide(t, 4), 4);
        // …until a stable window passes with no panic; then at most halving.
        let t = feed(&mut d, t, 6.0, 0);
        assert_eq!(d.decide(t, 4), 2);
        assert_eq!(d.decide(t, 2), 1);
    }

    #[test]
    fn steady_load_scales_on_the_stable_window_within_bounds() {
        let mut d = decider(3);
        let t0 = Instant::now();
        // 2.5 in flight on average over the window (no panic: 3 ≤ 2×2).
        let mut t = t0;
        for i in 0..100 {
            t += Duration::from_millis(100);
            d.record(t, if i % 2 == 0 { 2 } else { 3 }, 0);
        }
        assert_eq!(d.decide(t, 2), 3);
        // Far more than the maximum: clamped.
        let t = feed(&mut d, t, 10.0, 50);
        assert_eq!(d.decide(t, 3), 3);
    }

    #[test]
    fn rps_is_requests_over_the_window() {
        let mut d = Decider::new(Scaling {
            metric: Metric::Rps,
            target: 10.0,
            min: 1,
            max: 10,
            stable_window: Duration::from_secs(10),
            panic_window: Duration::from_secs(1),
            panic_threshold: 2.0,
        });
        let mut t = Instant::now();
        // 25 requests per second for ten seconds.
        for i in 0..=100u64 {
            d.record(t, 0, i * 25 / 10);
            t += Duration::from_millis(100);
        }
        assert_eq!(d.decide(t - Duration::from_millis(100), 3), 3);
    }
}
