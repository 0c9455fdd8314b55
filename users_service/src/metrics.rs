//! users_service's own metrics (names fixed in `docs/configuration.md`).

use common::metrics::{Metrics, SLOW_BUCKETS};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec};

/// Outcome labels, pre-created so dashboards see zeros rather than gaps.
const LOGIN_RESULTS: [&str; 3] = ["ok", "failed", "rate_limited"];
const REFRESH_RESULTS: [&str; 3] = ["ok", "reused", "invalid"];

pub struct UsersMetrics {
    pub registrations: IntCounter,
    logins: IntCounterVec,
    pub argon2_seconds: Histogram,
    refreshes: IntCounterVec,
}

impl UsersMetrics {
    /// Creates the metrics and registers them with the service's registry.
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        let registrations = metrics.counter(
            "users_registrations_total",
            "Accounts created through POST /register.",
        )?;
        let logins = metrics.counter_by(
            "users_logins_total",
            "Login attempts by result: ok, failed (any bad credential), rate_limited.",
            "result",
            &LOGIN_RESULTS,
        )?;
        let argon2_seconds = metrics.register(Histogram::with_opts(
            HistogramOpts::new(
                "users_argon2_seconds",
                "Time to hash or verify one password with argon2id (seconds).",
            )
            .buckets(SLOW_BUCKETS.to_vec()),
        )?)?;
        let refreshes = metrics.counter_by(
            "users_token_refreshes_total",
            "Refresh token uses by result: ok, reused (family revoked), invalid.",
            "result",
            &REFRESH_RESULTS,
        )?;
        Ok(Self {
            registrations,
            logins,
            argon2_seconds,
            refreshes,
        })
    }

    pub fn login(&self, result: &str) {
        self.logins.with_label_values(&[result]).inc();
    }

    pub fn refresh(&self, result: &str) {
        self.refreshes.with_label_values(&[result]).inc();
    }
}
