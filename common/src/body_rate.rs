//! A minimum data rate for request bodies.
//!
//! A handler reading a body holds one of the instance's `MAX_IN_FLIGHT` permits for as long as
//! the body takes to arrive, so a client trickling bytes could hold permits until the request
//! timeout and get every other request shed. After a short grace period a body must keep up an
//! average of at least `REQUEST_BODY_MIN_KIB_PER_SEC`; one that falls behind is cut, and the
//! request is answered 408 problem+json on a connection that is then closed.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::{config::BodyRate, Problem};

/// When a body that has delivered `received` bytes since `started` falls behind `rate`.
fn deadline(rate: &BodyRate, started: Instant, received: u64) -> Instant {
    let earned = Duration::from_secs_f64(received as f64 / rate.min_bytes_per_sec as f64);
    started + rate.grace + earned
}

/// The error a cut body reports to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
struct TooSlow;

/// A request body that fails once it falls behind its [`BodyRate`].
struct RateLimitedBody {
    inner: Body,
    rate: BodyRate,
    started: Instant,
    received: u64,
    deadline: Pin<Box<Sleep>>,
    cut: Arc<AtomicBool>,
}

impl HttpBody for RateLimitedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let deadline = deadline(&this.rate, this.started, this.received);
                    this.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.cut.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
                }
                Poll::Pending => Poll::Pending,
            },
            done => done,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: puts the request body under `rate`, and answers 408 when the body was cut,
/// whatever the handler made of the failed read.
pub async fn enforce_body_rate(
    State(rate): State<BodyRate>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let cut = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(RateLimitedBody {
            inner,
            rate,
            started,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(deadline(&rate, started, 0))),
            cut: cut.clone(),
        })
    });
    let response = next.run(request).await;
    if !cut.load(Ordering::Acquire) {
        return response;
    }
    tracing::warn!(
        min_bytes_per_sec = rate.min_bytes_per_sec,
        "request body too slow: cut"
    );
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "body-too-slow",
        format!(
            "The request body arrived slower than {} KiB/s after the first {} s; send it faster.",
            rate.min_bytes_per_sec / 1024,
            rate.grace.as_secs()
        ),
    )
    // The rest of the body is never read: the connection cannot carry another request.
    .with_header(header::CONNECTION, HeaderValue::from_static("close"))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_received_buys_time_at_the_minimum_rate() {
        let rate = BodyRate {
            grace: Duration::from_secs(2),
            min_bytes_per_sec: 1024,
        };
        let started = Instant::now();
        assert_eq!(
            deadline(&rate, started, 0),
            started + Duration::from_secs(2)
        );
        assert_eq!(
            deadline(&rate, started, 3 * 1024),
            started + Duration::from_secs(5)
        );
    }
}
