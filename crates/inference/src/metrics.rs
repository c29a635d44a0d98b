//! Prometheus metrics of the data plane: requests by model, protocol and
//! status code, latency and batch-size histograms per model.
//!
//! Counters are atomics behind a per-model entry found once per request; no
//! lock is held while a model computes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Latency bucket upper bounds, seconds (from 100 µs: native models answer
/// in microseconds, so the default Prometheus buckets would put everything
/// in the first one).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Batch-size bucket upper bounds.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A fixed-bucket histogram of atomics.
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    counts: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in micro-units (µs or rows × 10⁶) to stay in integers.
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// One model's series.
pub struct ModelMetrics {
    /// (protocol, status code) → count.
    requests: RwLock<BTreeMap<(&'static str, u16), Arc<AtomicU64>>>,
    latency: Histogram<14>,
    batch: Histogram<9>,
}

impl ModelMetrics {
    fn new() -> ModelMetrics {
        ModelMetrics {
            requests: RwLock::new(BTreeMap::new()),
            latency: Histogram::new(&LATENCY_BUCKETS),
            batch: Histogram::new(&BATCH_BUCKETS),
        }
    }

    /// Counts a finished request.
    pub fn request(&self, protocol: &'static str, status: u16, elapsed: Duration) {
        let key = (protocol, status);
        let counter = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let counter = match counter {
            Some(c) => c,
            None => self
                .requests
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .clone(),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status < 400 {
            self.latency.observe(elapsed.as_secs_f64());
        }
    }

    /// Records the number of rows of one model execution (1 per request
    /// without batching; the joined size with it).
    pub fn batch(&self, rows: usize) {
        self.batch.observe(rows as f64);
    }
}

/// Every model's series.
#[derive(Default)]
pub struct Metrics {
    models: RwLock<BTreeMap<String, Arc<ModelMetrics>>>,
}

impl Metrics {
    /// The series of `model`, created on first use.
    pub fn model(&self, model: &str) -> Arc<ModelMetrics> {
        if let Some(m) = self
            .models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
        {
            return m.clone();
        }
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(model.to_string())
            .or_insert_with(|| Arc::new(ModelMetrics::new()))
            .clone()
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP oxflow_inference_requests_total Inference requests by model, protocol and HTTP status.\n");
        out.push_str("# TYPE oxflow_inference_requests_total counter\n");
        for (name, m) in models.iter() {
            for ((protocol, status), count) in
                m.requests.read().unwrap_or_else(|e| e.into_inner()).iter()
            {
                let _ = writeln!(
                    out,
                    "oxflow_inference_requests_total{{model=\"{}\",protocol=\"{protocol}\",code=\"{status}\"}} {}",
                    escape(name),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP oxflow_inference_request_duration_seconds Latency of successful inference requests.\n");
        out.push_str("# TYPE oxflow_inference_request_duration_seconds histogram\n");
        for (name, m) in models.iter() {
            m.latency.render(
                &mut out,
                "oxflow_inference_request_duration_seconds",
                &format!("model=\"{}\"", escape(name)),
            );
        }
        out.push_str("# HELP oxflow_inference_batch_size Rows per model execution.\n");
        out.push_str("# TYPE oxflow_inference_batch_size histogram\n");
        for (name, m) in models.iter() {
            m.batch.render(
                &mut out,
                "oxflow_inference_batch_size",
                &format!("model=\"{}\"", escape(name)),
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let metrics = Metrics::default();
        let m = metrics.model("lr");
        m.request("v2", 200, Duration::from_micros(300));
        m.request("v2", 200, Duration::from_millis(3));
        m.request("v2", 400, Duration::from_millis(1));
        m.batch(1);
        m.batch(64);
        let text = metrics.render();
        assert!(
            text.contains(
                "oxflow_inference_requests_total{model=\"lr\",protocol=\"v2\",code=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "oxflow_inference_requests_total{model=\"lr\",protocol=\"v2\",code=\"400\"} 1"
        ));
        assert!(text.contains(
            "oxflow_inference_request_duration_seconds_bucket{model=\"lr\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "oxflow_inference_request_duration_seconds_bucket{model=\"lr\",le=\"0.005\"} 2"
        ));
        assert!(text.contains("oxflow_inference_request_duration_seconds_count{model=\"lr\"} 2"));
        assert!(text.contains("oxflow_inference_batch_size_bucket{model=\"lr\",le=\"32\"} 1"));
        assert!(text.contains("oxflow_inference_batch_size_bucket{model=\"lr\",le=\"64\"} 2"));
        assert!(text.contains("oxflow_inference_batch_size_sum{model=\"lr\"} 65"));
    }
}
