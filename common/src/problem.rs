//! RFC 9457 problem details: the one error body every service answers with.
//!
//! Handlers return a service error enum that converts into [`Problem`]; extractor rejections
//! (JSON, path, query) become problems too, so a client never sees axum's plain-text errors.

use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        FromRequest,
    },
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being handled, set by the request-id middleware.
    pub(crate) static REQUEST_ID: String;
}

/// The request id of the current request, when called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An error answer: an RFC 9457 problem+json body (the `Problem` schema of the OpenAPI documents).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/{slug}`, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation")]
    pub kind: String,
    /// The status's reason phrase.
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    /// The HTTP status, repeated.
    #[serde(serialize_with = "serialize_status")]
    #[schema(value_type = u16, minimum = 400, maximum = 599, example = 422)]
    pub status: StatusCode,
    /// What went wrong, in a sentence a person can act on.
    pub detail: String,
    /// The `X-Request-Id` of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds after which a retry makes sense (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Extra headers such as `WWW-Authenticate`.
    #[serde(skip)]
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

fn serialize_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// A problem of type `/problems/{slug}`; the title is the status's reason phrase.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status,
            detail: detail.into(),
            request_id: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    /// 422 for input that parsed but broke a rule; `detail` should name the field.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", detail)
    }
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            detail,
        )
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many attempts; wait before trying again.",
        )
        .retry_after(retry_after_secs)
    }
    pub fn overloaded(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail).retry_after(1)
    }
    /// A 500 whose cause stays in the logs; the client learns only the request id.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Quote the request id if you report it.",
        )
    }
    /// [`Problem::internal`] for a request that failed on our side: `cause`, with its context
    /// chain, goes to the logs only.
    pub fn unexpected(cause: anyhow::Error) -> Self {
        tracing::error!(error = format!("{cause:#}"), "request failed");
        Self::internal()
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = current_request_id();
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                Problem::validation(format!("Invalid request body: {}", e.body_text()))
            }
            JsonRejection::JsonSyntaxError(e) => {
                Problem::bad_request(format!("Malformed JSON: {}", e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => Problem::unsupported_media(
                "Send the body as JSON with `Content-Type: application/json`.",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::too_large("The request body is larger than this endpoint accepts.")
            }
            other => Problem::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::not_found(format!("No such resource: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::validation(format!("Invalid query string: {}", rejection.body_text()))
    }
}

/// `axum::Json` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct AppJson<T>(pub T);

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejections are problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query` whose rejections are problem+json.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct AppQuery<T>(pub T);

use axum::extract::FromRequestParts;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_problem_renders_as_problem_json_with_retry_after() {
        let response = Problem::rate_limited(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[tokio::test]
    async fn a_problem_carries_the_current_request_id() {
        let body = REQUEST_ID
            .scope("req-1".to_owned(), async {
                let response = Problem::not_found("no such image").into_response();
                axum::body::to_bytes(response.into_body(), 1024)
                    .await
                    .expect("body")
            })
            .await;
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["status"], 404);
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["type"], "/problems/not-found");
    }
}
