//! Closing the connection behind an answer given before the request body was read.
//!
//! A handler may answer without reading the whole body: 413 once an upload passes the limit,
//! 415 after sniffing its first bytes, 401 before reading anything, 503 when shedding. hyper then
//! cannot reuse the connection (the rest of the body is still on it) and closes it after the
//! answer, but the answer itself does not say so. A proxy that keeps connections alive (Traefik,
//! Go's HTTP transport) may send its next request on that connection in the meantime and answer
//! that request 502. Saying `Connection: close` on such an answer keeps the proxy from reusing it.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::Request,
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};
use http_body::{Frame, SizeHint};

/// A request body that records whether it was read to its end.
struct Tracked {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: an answer given before the request body was read to its end says
/// `Connection: close`. Requests without a body pass untouched.
pub async fn close_unless_body_read(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(Tracked {
            inner,
            ended: ended.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::{routing::post, Router};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/ignore", post(|| async { "not read" }))
            .route(
                "/read",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(axum::middleware::from_fn(close_unless_body_read))
    }

    async fn connection_header(method: &str, path: &str, body: &'static str) -> Option<String> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .expect("request");
        let response = app().oneshot(request).await.expect("answer");
        response
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn an_answer_before_the_body_was_read_closes_the_connection() {
        assert_eq!(
            connection_header("POST", "/ignore", "a body nobody reads").await,
            Some("close".to_owned())
        );
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_or_no_body_keeps_the_connection() {
        assert_eq!(connection_header("POST", "/read", "read whole").await, None);
        assert_eq!(connection_header("POST", "/ignore", "").await, None);
    }
}
