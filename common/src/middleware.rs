//! The request pipeline every service shares.
//!
//! Outermost first: request id (set if missing, echoed back), `X-Served-By`, a tracing span per
//! request, metrics by route template, panic → problem 500, problem+json for a bare 4xx (such as
//! axum's empty 405); for application routes only, a minimum request-body rate, a timeout and
//! load shedding: once `MAX_IN_FLIGHT` requests are being handled, new ones get 503 +
//! `Retry-After` at once instead of queueing, so the gateway can fail over to the backup.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use prometheus::IntGauge;
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
    body_rate::enforce_body_rate,
    config::BodyRate,
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

/// The methods that get a label of their own; any other method is counted as `other`.
static STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// The `method` label of a request. HTTP lets a client invent methods, so labelling by the raw
/// method would let anyone add series to `/metrics` without bound.
fn method_label(method: &Method) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|standard| *standard == method)
        .map_or("other", Method::as_str)
}

/// Counts a request in `http_requests_in_flight` until dropped, so a request whose client went
/// away (its future dropped mid-way) leaves the gauge too.
struct InFlight<'a>(&'a IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn observe(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    // Every label comes from a closed set: a standard method or `other`, a route template or
    // `unmatched`, a status class.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let in_flight = InFlight::enter(&metrics.in_flight);
    let started = Instant::now();
    let response = REQUEST_ID.scope(request_id, next.run(request)).await;
    drop(in_flight);
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = status_class(response.status().as_u16());
    metrics
        .requests
        .with_label_values(&[method, route, status])
        .inc();
    metrics
        .duration
        .with_label_values(&[method, route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The most of a plain-text error body that is read to become a problem's detail.
const BARE_ERROR_TEXT_LIMIT: usize = 1024;

/// True for a 4xx answer that is not JSON: empty, or plain text.
fn is_bare_client_error(response: &Response) -> bool {
    response.status().is_client_error()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"))
}

/// The problem type of a status no handler answers with itself.
fn bare_error_slug(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "bad-request".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "too-large".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type".to_owned(),
        StatusCode::UNPROCESSABLE_ENTITY => "validation".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("client-error")
            .to_ascii_lowercase()
            .replace(' ', "-"),
    }
}

/// Turns a 4xx answer that axum or a layer produced without our format (the empty 405 of a route
/// that does not take the method, a plain-text extractor rejection) into problem+json with the
/// same status and headers, `Allow` among them. Plain text becomes the detail.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if !is_bare_client_error(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        "This endpoint does not take this method; the Allow header lists those it takes.".to_owned()
    } else {
        let text = axum::body::to_bytes(body, BARE_ERROR_TEXT_LIMIT)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        text.unwrap_or_else(|| format!("{}.", status.canonical_reason().unwrap_or("Client error")))
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut problem = Problem::new(status, &bare_error_slug(status), detail).into_response();
    for (name, value) in &parts.headers {
        problem.headers_mut().append(name, value.clone());
    }
    problem
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}

/// Wraps the service's application routes with a minimum body rate, timeout and load shedding.
pub fn guard_app(app: Router, shedder: Shedder, timeout: Duration, body_rate: BodyRate) -> Router {
    app.layer(middleware::from_fn_with_state(body_rate, enforce_body_rate))
        .layer(middleware::from_fn_with_state(timeout, time_limit))
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
    router
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(crate::unread_body::close_unless_body_read))
        .layer(middleware::from_fn_with_state(metrics, observe))
        .layer(
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

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, Bytes},
        extract::DefaultBodyLimit,
        routing::get,
    };
    use tokio::{
        io::AsyncWriteExt,
        net::TcpStream,
        sync::{mpsc, oneshot},
    };
    use tower::ServiceExt;

    use super::*;
    use crate::{
        config::{LogFormat, ServerSettings},
        metrics::FAST_BUCKETS,
        ops,
        server::{build_router, Application, ServiceParts},
    };

    fn settings() -> ServerSettings {
        ServerSettings {
            listen_addr: ([127, 0, 0, 1], 0).into(),
            instance_name: "test-1".to_owned(),
            log_format: LogFormat::Pretty,
            max_in_flight: 8,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
            header_timeout: Duration::from_secs(10),
            body_rate: BodyRate::default(),
        }
    }

    fn metrics() -> Metrics {
        Metrics::new("test", "test-1", FAST_BUCKETS).expect("metrics")
    }

    /// `app` assembled as every service assembles its routes.
    fn service_router(app: Router, metrics: &Metrics) -> Router {
        service_router_with(app, metrics, settings())
    }

    fn service_router_with(app: Router, metrics: &Metrics, settings: ServerSettings) -> Router {
        build_router(ServiceParts {
            settings,
            metrics: metrics.clone(),
            app,
            readiness: ops::readiness(|| async { Ok(()) }),
            openapi: serde_json::json!({}),
        })
    }

    async fn send(router: &Router, method: &str, path: &str, body: Body) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .expect("a request");
        router.clone().oneshot(request).await.expect("infallible")
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// The number of series `/metrics` exports.
    async fn scraped_series(router: &Router) -> usize {
        let response = send(router, "GET", "/metrics", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::OK);
        body_text(response)
            .await
            .lines()
            .filter(|line| !line.starts_with('#'))
            .count()
    }

    async fn problem(response: Response) -> serde_json::Value {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        serde_json::from_str(&body_text(response).await).expect("a JSON body")
    }

    #[tokio::test]
    async fn invented_methods_add_no_metric_series() {
        let metrics = metrics();
        let router = service_router(
            Router::new().route("/things", get(|| async { "ok" })),
            &metrics,
        );
        let paths = ["/things", "/healthz", "/nowhere"];
        for path in paths {
            send(&router, "INVENTED0", path, Body::empty()).await;
        }
        // The first scrape adds the series of `GET /metrics` itself.
        scraped_series(&router).await;
        let before = scraped_series(&router).await;
        for n in 1..=300 {
            for path in paths {
                send(&router, &format!("INVENTED{n}"), path, Body::empty()).await;
            }
        }
        assert_eq!(scraped_series(&router).await, before);
        let text = metrics.render();
        assert!(!text.contains("INVENTED"), "{text}");
        assert!(
            text.contains(r#"method="other",route="/things",status="4xx""#),
            "{text}"
        );
    }

    #[test]
    fn standard_methods_keep_their_own_label() {
        for method in &STANDARD_METHODS {
            assert_eq!(method_label(method), method.as_str());
        }
        let invented = Method::from_bytes(b"FOO123").expect("a method token");
        assert_eq!(method_label(&invented), "other");
    }

    #[tokio::test]
    async fn a_request_abandoned_by_its_client_leaves_the_in_flight_gauge() {
        let metrics = metrics();
        // The handler never finishes; it hands the test a receiver that fails once the handler's
        // future is dropped.
        let (entered_tx, mut entered_rx) = mpsc::unbounded_channel::<oneshot::Receiver<()>>();
        let hang = get(move || {
            let entered_tx = entered_tx.clone();
            async move {
                let (_alive, dropped) = oneshot::channel::<()>();
                let _ = entered_tx.send(dropped);
                std::future::pending::<()>().await;
            }
        });
        let router = service_router(Router::new().route("/hang", hang), &metrics);
        let server = Application::bind(settings().listen_addr, router, Duration::from_secs(1))
            .await
            .expect("bind");
        let addr = server.local_addr().expect("an address");
        tokio::spawn(server.run_until_stopped(std::future::pending()));

        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"GET /hang HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .expect("send");
        let dropped = entered_rx.recv().await.expect("the handler runs");
        assert_eq!(metrics.in_flight.get(), 1);

        drop(client);
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("the server drops the request of a client that went away")
            .expect_err("the handler never finishes");
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[tokio::test]
    async fn a_method_a_route_does_not_take_gets_problem_json_with_allow() {
        let router = service_router(Router::new(), &metrics());
        let response = send(&router, "DELETE", "/healthz", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        assert!(response.headers().contains_key(REQUEST_ID_HEADER));
        let body = problem(response).await;
        assert_eq!(body["status"], 405);
        assert_eq!(body["type"], "/problems/method-not-allowed");
        assert_eq!(body["title"], "Method Not Allowed");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("Allow")));
        assert!(body["request_id"].is_string());
    }

    #[tokio::test]
    async fn plain_text_rejections_become_problem_json_with_their_text() {
        let app = Router::new()
            .route(
                "/json",
                axum::routing::post(|_: axum::Json<serde_json::Value>| async {}),
            )
            .route(
                "/bytes",
                axum::routing::post(|_: Bytes| async {}).layer(DefaultBodyLimit::max(8)),
            );
        let router = service_router(app, &metrics());

        let response = send(&router, "POST", "/json", Body::from("{}")).await;
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body = problem(response).await;
        assert_eq!(body["type"], "/problems/unsupported-media-type");
        assert!(body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Content-Type")));

        let response = send(&router, "POST", "/bytes", Body::from("more than eight")).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = problem(response).await;
        assert_eq!(body["type"], "/problems/too-large");
        assert_eq!(body["status"], 413);
    }

    #[tokio::test]
    async fn json_answers_are_left_alone() {
        let router = service_router(Router::new(), &metrics());
        let response = send(&router, "GET", "/nowhere", Body::empty()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = problem(response).await;
        assert_eq!(body["type"], "/problems/not-found");
        assert!(body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/openapi.json")));
    }

    /// Serves `router` on a free loopback port.
    async fn serve(router: Router) -> std::net::SocketAddr {
        let server = Application::bind(settings().listen_addr, router, Duration::from_secs(1))
            .await
            .expect("bind");
        let addr = server.local_addr().expect("an address");
        tokio::spawn(server.run_until_stopped(std::future::pending()));
        addr
    }

    #[tokio::test]
    async fn a_trickled_body_is_cut_with_408_and_frees_its_slot() {
        let grace = Duration::from_secs(1);
        let router = service_router_with(
            Router::new().route(
                "/upload",
                axum::routing::post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            ),
            &metrics(),
            ServerSettings {
                // One slot: while the slow body holds it, every other request would be shed.
                max_in_flight: 1,
                body_rate: BodyRate {
                    grace,
                    min_bytes_per_sec: 1024,
                },
                ..settings()
            },
        );
        let addr = serve(router).await;

        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(
            b"POST /upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100000\r\n\r\n",
        )
        .await
        .expect("send headers");
        let started = Instant::now();
        let (mut reader, mut writer) = slow.into_split();
        // The attack: one byte every 100 ms, 10 B/s, far below 1 KiB/s.
        let trickle = tokio::spawn(async move {
            for _ in 0..600 {
                if writer.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut answer = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut answer),
        )
        .await
        .expect("the slow request is answered and its connection closed")
        .expect("read");
        let elapsed = started.elapsed();
        trickle.abort();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains("/problems/body-too-slow"), "{answer}");
        assert!(
            elapsed >= grace && elapsed < grace + Duration::from_secs(3),
            "cut after {elapsed:?}"
        );

        let client = reqwest::Client::new();
        let normal = client
            .post(format!("http://{addr}/upload"))
            .body(vec![b'y'; 100_000])
            .send()
            .await
            .expect("a normal upload");
        assert_eq!(normal.status(), StatusCode::OK);
        assert_eq!(normal.text().await.expect("body"), "100000 bytes");
    }
}
