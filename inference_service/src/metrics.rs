//! The inference metrics named in `docs/configuration.md`.

use common::metrics::Metrics;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

/// Forward-pass buckets: a tiny test model takes milliseconds, ResMem on one core a few hundred.
const INFERENCE_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0,
];

/// Domain metrics of inference_service.
#[derive(Clone)]
pub struct InferenceMetrics {
    pub seconds: Histogram,
    pub predictions: IntCounterVec,
    pub queue_depth: IntGauge,
    pub model_load_seconds: Gauge,
    pub model_loaded: IntGauge,
    pub model_info: IntGaugeVec,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
}

impl InferenceMetrics {
    /// Creates the metrics and registers them with the service's registry.
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            seconds: metrics.register(Histogram::with_opts(
                HistogramOpts::new("inference_seconds", "Time of one model forward pass.")
                    .buckets(INFERENCE_BUCKETS.to_vec()),
            )?)?,
            predictions: metrics.register(IntCounterVec::new(
                Opts::new(
                    "inference_predictions_total",
                    "Predictions answered, by label.",
                ),
                &["label"],
            )?)?,
            queue_depth: metrics.register(IntGauge::new(
                "inference_queue_depth",
                "Requests waiting for an inference worker (a stored image's while it is fetched too).",
            )?)?,
            model_load_seconds: metrics.register(Gauge::new(
                "inference_model_load_seconds",
                "Time to verify, load and optimise the model at start.",
            )?)?,
            model_loaded: metrics.register(IntGauge::new(
                "inference_model_loaded",
                "1 once the model is ready.",
            )?)?,
            model_info: metrics.register(IntGaugeVec::new(
                Opts::new("inference_model_info", "The loaded model (always 1)."),
                &["name", "version", "sha256"],
            )?)?,
            cache_hits: metrics.counter(
                "inference_cache_hits_total",
                "Predictions answered from the cache.",
            )?,
            cache_misses: metrics.counter(
                "inference_cache_misses_total",
                "Predictions that had to run the model.",
            )?,
        })
    }
}
