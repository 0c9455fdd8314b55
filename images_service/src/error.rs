//! The service's errors and the problem+json each one becomes. Causes of 5xx answers are logged,
//! never sent.

use axum::response::{IntoResponse, Response};
use common::{imaging::Rejection, Problem};

/// `Result` with [`ImagesError`] as the default error.
pub type Result<T, E = ImagesError> = std::result::Result<T, E>;

/// Everything a request to images_service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(
        "The request has no `file` field: send the image as multipart/form-data field `file`."
    )]
    MissingFile,
    /// The `file` field is no acceptable image: the same answer inference_service gives.
    #[error(transparent)]
    Image(#[from] Rejection),
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
            Self::Image(rejection) => rejection.reason(),
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
            ImagesError::MissingFile | ImagesError::Validation(_) => Problem::validation(detail),
            ImagesError::Image(rejection) => rejection.into(),
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
            (Rejection::Empty.into(), StatusCode::UNPROCESSABLE_ENTITY),
            (
                Rejection::TooLarge { limit: 1 }.into(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                Rejection::UnsupportedType.into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                Rejection::TooManyPixels("x".into()).into(),
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
