//! The service's errors and the problem+json each one becomes. Causes of 5xx answers are logged,
//! never sent.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use common::{imaging::Rejection, Problem};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a prediction can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The request has no `file` field: send the image as multipart/form-data field `file`, or as the raw body.")]
    MissingFile,
    /// The image is refused: the same answer images_service gives.
    #[error(transparent)]
    Image(#[from] Rejection),
    #[error(
        "Send the image as the raw body (Content-Type: image/* or application/octet-stream) \
         or as multipart/form-data field `file`."
    )]
    UnsupportedContentType,
    #[error("{0}")]
    BadMultipart(String),
    #[error("There is no image with this id.")]
    ImageNotFound,
    #[error("The images service refused the access token; log in again.")]
    ImagesUnauthorized,
    #[error("The images service cannot be reached; retry shortly.")]
    ImagesUnavailable,
    #[error("The model is still loading; retry shortly.")]
    ModelNotReady,
    #[error("Every inference worker is busy and the queue is full; retry shortly.")]
    Busy,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let detail = error.to_string();
        match error {
            Error::MissingFile => Problem::validation(detail),
            Error::Image(rejection) => rejection.into(),
            Error::UnsupportedContentType => Problem::unsupported_media(detail),
            Error::BadMultipart(_) => Problem::bad_request(detail),
            Error::ImageNotFound => Problem::not_found(detail),
            Error::ImagesUnauthorized => Problem::unauthorized(detail),
            Error::ImagesUnavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "images-unavailable",
                detail,
            )
            .retry_after(1),
            Error::ModelNotReady => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "model-not-ready", detail)
                    .retry_after(5)
            }
            Error::Busy => Problem::overloaded(detail),
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
    use super::*;

    /// An image rejection keeps the status common::imaging gives it (each one is tested there).
    #[test]
    fn each_rejection_maps_to_its_status() {
        let cases = [
            (Error::MissingFile, StatusCode::UNPROCESSABLE_ENTITY),
            (
                Rejection::UnsupportedType.into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                Error::UnsupportedContentType,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (Error::ImageNotFound, StatusCode::NOT_FOUND),
            (Error::ImagesUnauthorized, StatusCode::UNAUTHORIZED),
            (Error::ImagesUnavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Error::Busy, StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (error, status) in cases {
            assert_eq!(Problem::from(error).status, status);
        }
    }

    #[test]
    fn overload_tells_the_client_when_to_retry() {
        assert_eq!(Problem::from(Error::Busy).retry_after, Some(1));
    }

    #[test]
    fn an_unexpected_error_hides_its_cause() {
        let problem = Problem::from(Error::Unexpected(anyhow::anyhow!(
            "tract: /srv/model broke"
        )));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("tract"));
    }
}
