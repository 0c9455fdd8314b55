//! The service's errors and the problem+json each one becomes. Causes of 5xx answers are logged,
//! never sent.

use axum::response::{IntoResponse, Response};
use common::Problem;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request to images_service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "The request has no `file` field: send the image as multipart/form-data field `file`."
    )]
    MissingFile,
    #[error("The `file` field is empty: send the image's bytes.")]
    EmptyFile,
    #[error("The file is larger than the limit of {limit} bytes.")]
    TooLarge { limit: u64 },
    #[error(
        "The file is not a JPEG, PNG, WebP or GIF image (judged by its content, not its name)."
    )]
    UnsupportedType,
    #[error("The `file` field is not a valid {kind} image: {reason}")]
    Corrupt { kind: &'static str, reason: String },
    #[error("The image in `file` is too large to decode: {0}")]
    TooManyPixels(String),
    #[error("{0}")]
    BadMultipart(String),
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
            Self::EmptyFile => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedType => "unsupported_type",
            Self::Corrupt { .. } => "corrupt",
            Self::TooManyPixels(_) => "too_many_pixels",
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
            Error::MissingFile | Error::EmptyFile | Error::Validation(_) => {
                Problem::validation(detail)
            }
            Error::Corrupt { .. } => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "corrupt-image",
                detail,
            ),
            Error::TooManyPixels(_) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-pixels",
                detail,
            ),
            Error::TooLarge { .. } => Problem::too_large(detail),
            Error::UnsupportedType => Problem::unsupported_media(detail),
            Error::BadMultipart(_) => Problem::bad_request(detail),
            Error::NotFound => Problem::not_found(detail),
            Error::Unexpected(cause) => {
                tracing::error!(error = ?cause, "request failed");
                Problem::internal()
            }
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

    #[test]
    fn each_rejection_maps_to_its_status() {
        let cases = [
            (Error::MissingFile, StatusCode::UNPROCESSABLE_ENTITY),
            (Error::EmptyFile, StatusCode::UNPROCESSABLE_ENTITY),
            (Error::TooLarge { limit: 1 }, StatusCode::PAYLOAD_TOO_LARGE),
            (Error::UnsupportedType, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (
                Error::TooManyPixels("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
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
