//! `GET /predict/{image_id}` (an image stored in images_service) and `POST /predict` (raw bytes
//! or multipart `file`).

use axum::{
    body::Body,
    extract::{multipart::MultipartError, FromRequest, Multipart, Request, State},
    http::{header, StatusCode},
    routing::{get, post},
    Json, Router,
};
use bytes::{Bytes, BytesMut};
use common::{auth::AuthUser, imaging::Rejection, problem::AppPath};
use futures::StreamExt;
use serde::Serialize;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    predictor::{Label, ModelRef, Prediction},
    state::AppState,
};
use common::openapi::ProblemBody;

#[derive(OpenApi)]
#[openapi(
    paths(predict_stored, predict_upload),
    components(schemas(PredictionBody, Label, ModelRef))
)]
pub(super) struct PredictApi;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/predict/{image_id}", get(predict_stored))
        .route("/predict", post(predict_upload))
}

#[derive(Serialize, utoipa::ToSchema)]
struct PredictionBody {
    /// Present for `GET /predict/{image_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<Uuid>,
    prediction: Label,
    /// Predicted memorability, 0..1.
    score: f32,
    threshold: f32,
    model: ModelRef,
    /// Time spent on this prediction, in milliseconds.
    elapsed_ms: f64,
}

impl PredictionBody {
    fn new(image_id: Option<Uuid>, p: Prediction) -> Self {
        Self {
            image_id,
            prediction: p.label,
            score: p.score,
            threshold: p.threshold,
            model: p.model,
            elapsed_ms: (p.elapsed_ms * 1000.0).round() / 1000.0,
        }
    }
}

/// Predicts for one of the caller's stored images.
#[utoipa::path(
    get,
    path = "/predict/{image_id}",
    tag = "inference",
    params(("image_id" = Uuid, Path, description = "An image the caller uploaded to images_service")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The prediction", body = PredictionBody),
        (status = 401, description = "Missing or invalid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The stored file cannot be decoded", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Busy, model loading or images service unreachable; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user = %user.id, %image_id))]
async fn predict_stored(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(image_id): AppPath<Uuid>,
) -> Result<Json<PredictionBody>> {
    state.predictor.model()?;
    let bytes = state.images.fetch(image_id, &user.token).await?;
    let prediction = state.predictor.predict(bytes).await?;
    Ok(Json(PredictionBody::new(Some(image_id), prediction)))
}

/// Predicts for an image sent in the request.
#[utoipa::path(
    post,
    path = "/predict",
    tag = "inference",
    request_body(
        content(
            (Vec<u8> = "application/octet-stream"),
            (Vec<u8> = "image/*"),
            (Vec<u8> = "multipart/form-data"),
        ),
        description = "The image as the raw body, or as multipart/form-data field `file`"
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The prediction", body = PredictionBody),
        (status = 401, description = "Missing or invalid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Larger than MAX_UPLOAD_BYTES", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not a JPEG, PNG, WebP or GIF image", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Corrupt, empty or too many pixels", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Busy or model loading; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(user = %user.id))]
async fn predict_upload(
    State(state): State<AppState>,
    user: AuthUser,
    request: Request,
) -> Result<Json<PredictionBody>> {
    state.predictor.model()?;
    let limit = state.limits.max_upload_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let bytes = match content_type.as_deref() {
        Some("multipart/form-data") => read_multipart(request, limit).await?,
        None | Some("application/octet-stream") => read_body(request.into_body(), limit).await?,
        Some(image) if image.starts_with("image/") => read_body(request.into_body(), limit).await?,
        Some(_) => return Err(Error::UnsupportedContentType),
    };
    let prediction = state.predictor.predict(bytes).await?;
    Ok(Json(PredictionBody::new(None, prediction)))
}

/// The raw body, refused with 413 as soon as it passes `limit`.
async fn read_body(body: Body, limit: u64) -> Result<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::BadMultipart(format!("The request body broke off: {e}")))?;
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Err(Rejection::TooLarge { limit }.into());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// The `file` field of a multipart body.
async fn read_multipart(request: Request, limit: u64) -> Result<Bytes> {
    let too_large = |e: &MultipartError| e.status() == StatusCode::PAYLOAD_TOO_LARGE;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| Error::BadMultipart(format!("Malformed multipart body: {e}")))?;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Err(Error::MissingFile),
            Err(e) if too_large(&e) => return Err(Rejection::TooLarge { limit }.into()),
            Err(e) => {
                return Err(Error::BadMultipart(format!(
                    "Malformed multipart body: {e}"
                )))
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let mut field = field;
        let mut buffer = BytesMut::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if (buffer.len() + chunk.len()) as u64 > limit {
                        return Err(Rejection::TooLarge { limit }.into());
                    }
                    buffer.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(buffer.freeze()),
                Err(e) if too_large(&e) => return Err(Rejection::TooLarge { limit }.into()),
                Err(e) => {
                    return Err(Error::BadMultipart(format!(
                        "Malformed multipart body: {e}"
                    )))
                }
            }
        }
    }
}
