//! The service's errors and the problem+json each one becomes. Causes of 5xx answers are logged,
//! never sent.

use axum::response::{IntoResponse, Response};
use common::Problem;

/// `Result` with [`ImagesError`] as the default error.
pub type Result<T, E = ImagesError> = std::result::Result<T, E>;

/// Everything a request to images_service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
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

impl ImagesError {
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

impl From<sqlx::Error> for ImagesError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(error).context("database"))
    }
}

impl From<object_store::Error> for ImagesError {
    fn from(error: object_store::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(error).context("object store"))
    }
}

impl From<ImagesError> for Problem {
    fn from(error: ImagesError) -> Self {
        let detail = error.to_string();
        match error {
            ImagesError::MissingFile | ImagesError::EmptyFile | ImagesError::Validation(_) => {
                Problem::validation(detail)
            }
            ImagesError::Corrupt { .. } => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "corrupt-image",
                detail,
            ),
            ImagesError::TooManyPixels(_) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-pixels",
                detail,
            ),
            ImagesError::TooLarge { .. } => Problem::too_large(detail),
            ImagesError::UnsupportedType => Problem::unsupported_media(detail),
            ImagesError::BadMultipart(_) => Problem::bad_request(detail),
            ImagesError::NotFound => Problem::not_found(detail),
            ImagesError::Unexpected(cause) => {
                tracing::error!(error = ?cause, "request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for ImagesError {
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
            (ImagesError::MissingFile, StatusCode::UNPROCESSABLE_ENTITY),
            (ImagesError::EmptyFile, StatusCode::UNPROCESSABLE_ENTITY),
            (
                ImagesError::TooLarge { limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ImagesError::UnsupportedType,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                ImagesError::TooManyPixels("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (ImagesError::NotFound, StatusCode::NOT_FOUND),
        ];
        for (error, status) in cases {
            assert_eq!(Problem::from(error).status, status);
        }
    }

    #[test]
    fn an_unexpected_error_hides_its_cause() {
        let problem = Problem::from(ImagesError::Unexpected(anyhow::anyhow!(
            "disk /srv/secret full"
        )));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("secret"));
    }
}
