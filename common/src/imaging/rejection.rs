//! Why an image is refused, and the one problem+json answer each reason gets in every service.

use axum::http::StatusCode;

use super::ImageType;
use crate::Problem;

/// Why image bytes are refused. Every service answers a rejection with the same status and
/// problem type (see the `From<Rejection> for Problem` impl).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bytes at all.
    #[error("The image is empty: send the image's bytes.")]
    Empty,
    /// More bytes than `MAX_UPLOAD_BYTES`.
    #[error("The image is larger than the limit of {limit} bytes.")]
    TooLarge { limit: u64 },
    /// Not a JPEG, PNG, WebP or GIF, judged by the first bytes.
    #[error(
        "The image is not a JPEG, PNG, WebP or GIF image (judged by its content, not its name)."
    )]
    UnsupportedType,
    /// Truncated, or not decodable as the type its first bytes announce.
    #[error("The image is not a valid {kind} image: {reason}")]
    Corrupt { kind: ImageType, reason: String },
    /// Wider or taller than `MAX_IMAGE_DIMENSION`, or needing more than `MAX_DECODE_BYTES`.
    #[error("The image is too large to decode: {0}")]
    TooManyPixels(String),
}

impl Rejection {
    /// A short label for metrics (`reason="corrupt"`) and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedType => "unsupported_type",
            Self::Corrupt { .. } => "corrupt",
            Self::TooManyPixels(_) => "too_many_pixels",
        }
    }
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Self {
        let detail = rejection.to_string();
        match rejection {
            Rejection::Empty => Problem::validation(detail),
            Rejection::TooLarge { .. } => Problem::too_large(detail),
            Rejection::UnsupportedType => Problem::unsupported_media(detail),
            Rejection::Corrupt { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "corrupt-image", detail)
            }
            Rejection::TooManyPixels(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "too-many-pixels", detail)
            }
        }
    }
}

/// Panics unless `found` is a [`Rejection::Corrupt`] of type `kind` (for the imaging tests).
#[cfg(test)]
pub(super) fn assert_corrupt<T: std::fmt::Debug>(found: &Result<T, Rejection>, kind: ImageType) {
    assert!(
        matches!(found, Err(Rejection::Corrupt { kind: found_kind, .. }) if *found_kind == kind),
        "{found:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rejection_has_its_status_and_problem_type() {
        let cases = [
            (
                Rejection::Empty,
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/validation",
            ),
            (
                Rejection::TooLarge { limit: 10 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/too-large",
            ),
            (
                Rejection::UnsupportedType,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
            ),
            (
                Rejection::Corrupt {
                    kind: ImageType::Png,
                    reason: "bad".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/corrupt-image",
            ),
            (
                Rejection::TooManyPixels("big".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/too-many-pixels",
            ),
        ];
        for (rejection, status, kind) in cases {
            let problem = Problem::from(rejection.clone());
            assert_eq!(
                (problem.status, problem.kind.as_str()),
                (status, kind),
                "{rejection:?}"
            );
        }
    }

    #[test]
    fn the_detail_names_the_limit_and_the_type() {
        assert!(Rejection::TooLarge { limit: 2048 }
            .to_string()
            .contains("2048 bytes"));
        let corrupt = Rejection::Corrupt {
            kind: ImageType::Jpeg,
            reason: "the file ends early (truncated)".into(),
        };
        assert_eq!(
            corrupt.to_string(),
            "The image is not a valid JPEG image: the file ends early (truncated)"
        );
    }
}
