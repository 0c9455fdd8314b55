//! The one error type of users_service and how it becomes problem+json.
//!
//! Client errors carry a sentence the caller can act on; server errors are logged with their
//! cause and answered with a bare 500 that only quotes the request id.

use axum::response::{IntoResponse, Response};
use common::Problem;

use crate::passwords::HashError;

/// The message of every failed login, whether the user exists or not.
pub const INVALID_CREDENTIALS: &str = "The username or password is incorrect.";
/// The message for a disabled account's refresh token or access token. A login with the right
/// password gets [`INVALID_CREDENTIALS`] instead, so the answer does not confirm the password.
pub const ACCOUNT_DISABLED: &str = "This account is disabled; contact an administrator.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401 on any bad login credential, with the same body for unknown users and wrong passwords.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401: the account's token was valid, but an admin disabled the account.
    #[error("account disabled")]
    AccountDisabled,
    /// 401 with a specific sentence (bad or reused refresh token, unknown user in a token).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 422: the input parsed but broke a rule; the sentence names the field.
    #[error("validation: {0}")]
    Validation(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("rate limited for {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// 503: every password-hashing slot is taken and the queue is full.
    #[error("password hashing busy")]
    HashingBusy,
    /// A problem produced elsewhere (an extractor, the shared token verifier); boxed because
    /// it is much larger than every other variant.
    #[error("{0}")]
    Problem(Box<Problem>),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// `Result` with users_service's error by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidCredentials => Problem::unauthorized(INVALID_CREDENTIALS),
            Error::AccountDisabled => Problem::unauthorized(ACCOUNT_DISABLED),
            Error::Unauthorized(detail) => Problem::unauthorized(detail),
            Error::Validation(detail) => Problem::validation(detail),
            Error::Forbidden(detail) => Problem::forbidden(detail),
            Error::NotFound(detail) => Problem::not_found(detail),
            Error::Conflict(detail) => Problem::conflict(detail),
            Error::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            Error::HashingBusy => {
                Problem::overloaded("Too many password checks are waiting; retry shortly.")
            }
            Error::Problem(problem) => *problem,
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                Problem::internal()
            }
            Error::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "unexpected error");
                Problem::internal()
            }
        }
    }
}

impl From<HashError> for Error {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Self::HashingBusy,
            HashError::Failed(e) => Self::Unexpected(e),
        }
    }
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
