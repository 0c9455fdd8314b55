//! The service's errors and the problem+json each one becomes. Causes of 5xx answers are logged,
//! never sent.

use axum::response::{IntoResponse, Response};
use common::{imaging::Rejection, Problem};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request to images_service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "The request has no `file` field: send the image as multipart/form-data field `file`."
    )]
    MissingFile,
    /// The `file` field is no acceptable image: the same answer inference_service gives.
    #[error(transparent)]
    Image(#[from] Rejection),
    #[error("{0}")]
    BadMultipart(String),
    #[error("Send the image as multipart/form-data with a `file` field.")]
    NotMultipart,
    #[error("{0}")]
    Validation(String),
    #[error("There is no image with this id.")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Error {
    /// The `reason` label of `images_upload_rejections_total`, for upload rejections.
    pub fn rejection_reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::MissingFile => "missing_file",
            Self::Image(rejection) => rejection.reason(),
            _ => return None,
        })
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(error).context("database"))
    }
}

impl From<object_store::Error> for Error {
    fn from(error: object_store::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(error).context("object store"))
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let detail = error.to_string();
        match error {
            Error::MissingFile | Error::Validation(_) => Problem::validation(detail),
            Error::Image(rejection) => rejection.into(),
            Error::BadMultipart(_) => Problem::bad_request(detail),
            Error::NotMultipart => Problem::unsupported_media(detail),
            Error::NotFound => Problem::not_found(detail),
            Error::Unexpected(cause) => Problem::unexpected(cause),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    /// An image rejection keeps the status common::imaging gives it (each one is tested there).
    #[test]
    fn each_rejection_maps_to_its_status() {
        let cases = [
            (Error::MissingFile, StatusCode::UNPROCESSABLE_ENTITY),
            (
                Rejection::TooLarge { limit: 1 }.into(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                Error::Validation("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (Error::BadMultipart("x".into()), StatusCode::BAD_REQUEST),
            (Error::NotMultipart, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (Error::NotFound, StatusCode::NOT_FOUND),
        ];
        for (error, status) in cases {
            assert_eq!(Problem::from(error).status, status);
        }
    }

    #[test]
    fn an_unexpected_error_hides_its_cause() {
        let problem = Problem::from(Error::Unexpected(anyhow::anyhow!("disk /srv/secret full")));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("secret"));
    }
}
