//! users_service's own metrics (names fixed in `docs/configuration.md`).

use crate::passwords::HashMetrics;
use common::metrics::{Metrics, SLOW_BUCKETS};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge};

/// Outcome labels, pre-created so dashboards see zeros rather than gaps.
const LOGIN_RESULTS: [&str; 3] = ["ok", "failed", "rate_limited"];
const REFRESH_RESULTS: [&str; 3] = ["ok", "reused", "invalid"];

pub struct UsersMetrics {
    pub registrations: IntCounter,
    logins: IntCounterVec,
    pub argon2_seconds: Histogram,
    pub argon2_queued: IntGauge,
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
        let argon2_queued = metrics.register(IntGauge::new(
            "users_argon2_queued",
            "Password hashes waiting for a free slot (at most ARGON2_MAX_QUEUE).",
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
            argon2_queued,
            refreshes,
        })
    }

    /// The metrics the password hasher updates.
    pub fn hash_metrics(&self) -> HashMetrics {
        HashMetrics {
            seconds: self.argon2_seconds.clone(),
            queued: self.argon2_queued.clone(),
        }
    }

    pub fn login(&self, result: &str) {
        self.logins.with_label_values(&[result]).inc();
    }

    pub fn refresh(&self, result: &str) {
        self.refreshes.with_label_values(&[result]).inc();
    }
}
