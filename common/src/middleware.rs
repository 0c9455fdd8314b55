//! The request pipeline every service shares.
//!
//! Outermost first: request id (set if missing, echoed back), `X-Served-By`, a tracing span per
//! request, metrics by route template, panic → problem 500; for application routes only, a
//! timeout and load shedding: once `MAX_IN_FLIGHT` requests are being handled, new ones get 503 +
//! `Retry-After` at once instead of queueing, so the gateway can fail over to the backup.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    classify::ServerErrorsFailureClass,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    metrics::{status_class, Metrics},
    problem::REQUEST_ID,
    Problem,
};

/// `X-Request-Id`.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Served-By`: which instance answered.
pub const SERVED_BY_HEADER: HeaderName = HeaderName::from_static("x-served-by");

/// Bounds the requests handled at once; the rest are shed.
#[derive(Clone)]
pub struct Shedder {
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl Shedder {
    pub fn new(max_in_flight: usize, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            metrics,
        }
    }

    /// True while every permit is taken: `/readyz` answers 503 then.
    pub fn is_saturated(&self) -> bool {
        self.permits.available_permits() == 0
    }
}

async fn shed_when_saturated(
    State(shedder): State<Shedder>,
    request: Request,
    next: Next,
) -> Response {
    match shedder.permits.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            shedder.metrics.shed.inc();
            tracing::warn!("shedding request: instance saturated");
            // The request body is left unread, so the connection must not be reused: saying so
            // keeps a proxy from sending its next request down a connection that is closing.
            Problem::overloaded("This instance is at capacity; retry shortly.")
                .with_header(header::CONNECTION, HeaderValue::from_static("close"))
                .into_response()
        }
    }
}

async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "The request took longer than {} s and was abandoned.",
                limit.as_secs()
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}

async fn observe(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = REQUEST_ID.scope(request_id, next.run(request)).await;
    metrics.in_flight.dec();
    let status = status_class(response.status().as_u16());
    metrics
        .requests
        .with_label_values(&[method.as_str(), route.as_str(), status])
        .inc();
    metrics
        .duration
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}

/// Wraps the service's application routes with timeout and load shedding.
pub fn guard_app(app: Router, shedder: Shedder, timeout: Duration) -> Router {
    app.layer(middleware::from_fn_with_state(timeout, time_limit))
        .layer(middleware::from_fn_with_state(shedder, shed_when_saturated))
}

/// Logs a 5xx answer. A 503 is the service saying it is not ready yet (`/readyz` while the model
/// loads, polled many times a second at start) or that it sheds load (counted in the metrics):
/// expected answers, logged at debug level so a normal start prints no error.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    let latency_ms = latency.as_millis();
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(classification = %class, latency_ms, "response failed");
        }
        _ => tracing::error!(classification = %class, latency_ms, "response failed"),
    }
}

/// Wraps every route (application and ops) with request id, served-by, tracing, metrics and
/// panic handling.
pub fn common_layers(router: Router, metrics: Metrics, instance_name: &str) -> Router {
    let served_by = HeaderValue::from_str(instance_name)
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    router.layer(middleware::from_fn_with_state(metrics, observe)).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(SetResponseHeaderLayer::overriding(SERVED_BY_HEADER, served_by))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id)
            }).on_failure(log_failure))
            .layer(CatchPanicLayer::custom(panic_to_problem)),
    )
}
