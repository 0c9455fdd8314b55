//! The Prometheus registry of a service and the HTTP metrics every service exposes.
//!
//! All metrics carry the const labels `service` and `server` (the instance name), so one
//! dashboard query can split by replica. Labels never hold raw paths or ids: routes are axum's
//! matched route templates.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Latency buckets for fast JSON endpoints (seconds).
pub const FAST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Latency buckets for endpoints that hash passwords, move megabytes or run a model (seconds).
pub const SLOW_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The registry plus the HTTP metrics the middleware records.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub in_flight: IntGauge,
    pub shed: IntCounter,
}

impl Metrics {
    /// A registry labelled with `service` and `server`, with process metrics and HTTP metrics.
    pub fn new(service: &str, server: &str, buckets: &[f64]) -> anyhow::Result<Self> {
        let labels = [
            ("service".to_owned(), service.to_owned()),
            ("server".to_owned(), server.to_owned()),
        ];
        let registry = Registry::new_custom(None, Some(labels.into_iter().collect()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status class.",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route template.",
            )
            .buckets(buckets.to_vec()),
            &["method", "route"],
        )?;
        let in_flight = IntGauge::new(
            "http_requests_in_flight",
            "HTTP requests being handled now.",
        )?;
        let shed = IntCounter::new(
            "http_requests_shed_total",
            "Requests refused with 503 because MAX_IN_FLIGHT requests were already being handled.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            in_flight,
            shed,
        })
    }

    /// Registers a service's own metric.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(
        &self,
        collector: C,
    ) -> anyhow::Result<C> {
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// Registers a service's own counter.
    pub fn counter(&self, name: &str, help: &str) -> anyhow::Result<IntCounter> {
        self.register(IntCounter::new(name, help)?)
    }

    /// Registers a service's own counter with one label, each of `values` created at zero so
    /// dashboards see zeros rather than gaps.
    pub fn counter_by(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: &[&str],
    ) -> anyhow::Result<IntCounterVec> {
        let counter = self.register(IntCounterVec::new(Opts::new(name, help), &[label])?)?;
        for value in values {
            counter.with_label_values(&[value]);
        }
        Ok(counter)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// `2xx`, `4xx`, ... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_carries_service_and_server_labels() {
        let metrics = Metrics::new("users", "users-2", FAST_BUCKETS).expect("metrics");
        metrics
            .requests
            .with_label_values(&["GET", "/me", "2xx"])
            .inc();
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("http_requests_total{"))
            .expect("the request counter is exported");
        for label in [
            r#"route="/me""#,
            r#"status="2xx""#,
            r#"service="users""#,
            r#"server="users-2""#,
        ] {
            assert!(line.contains(label), "{label} missing in {line}");
        }
        assert!(line.ends_with(" 1"), "{line}");
    }

    #[test]
    fn status_codes_map_to_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
