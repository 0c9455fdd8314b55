//! Operational endpoints: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! They sit outside load shedding, so probes and scrapes still answer while the instance is
//! saturated; `/readyz` then says 503 so the gateway's health check moves traffic away.

use std::{future::Future, pin::Pin, sync::Arc};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::{metrics::Metrics, middleware::Shedder};

/// A readiness check: `Ok` when the dependencies the service needs are usable.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Builds a [`ReadinessCheck`] from an async closure.
pub fn readiness<F, Fut>(check: F) -> ReadinessCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}

#[derive(Clone)]
struct OpsState {
    metrics: Metrics,
    shedder: Shedder,
    readiness: ReadinessCheck,
    openapi: Arc<serde_json::Value>,
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<OpsState>) -> Response {
    if state.shedder.is_saturated() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "saturated"})),
        )
            .into_response();
    }
    match (state.readiness)().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(reason) => {
            // Polled every second by the gateway and the orchestrator, also while a service is
            // starting; the reason is in the answer, and in the log at debug level.
            tracing::debug!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "reason": reason})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi(State(state): State<OpsState>) -> Response {
    Json(state.openapi.as_ref().clone()).into_response()
}

/// The ops routes of a service.
pub fn router(
    metrics: Metrics,
    shedder: Shedder,
    readiness: ReadinessCheck,
    openapi: serde_json::Value,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(self::metrics))
        .route("/openapi.json", get(self::openapi))
        .with_state(OpsState {
            metrics,
            shedder,
            readiness,
            openapi: Arc::new(openapi),
        })
}
