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
use common::{
    auth::AuthUser,
    imaging::Rejection,
    openapi::{Binary, FileUpload},
    problem::AppPath,
};
use futures::StreamExt;
use serde::Serialize;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    predictor::{Label, ModelRef, Prediction},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    paths(predict_stored, predict_upload),
    components(schemas(PredictionBody, Label, ModelRef, FileUpload))
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
        (status = 401, description = "Missing or invalid token, or images_service refused it"),
        (status = 404, description = "No such image of the caller's"),
        (status = 413, description = "The stored image is larger than MAX_UPLOAD_BYTES"),
        (status = 415, description = "The stored file is not a JPEG, PNG, WebP or GIF image"),
        (status = 422, description = "The stored file is empty, corrupt or has too many pixels"),
        (status = 503, description = "Busy, model loading or images service unreachable; see Retry-After"),
    )
)]
#[tracing::instrument(skip_all, fields(user = %user.id, %image_id))]
async fn predict_stored(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(image_id): AppPath<Uuid>,
) -> Result<Json<PredictionBody>> {
    state.predictor.model()?;
    // The metadata is small: the cache, the queue and the size limit are consulted with it, and
    // the bytes are fetched only when the model must run on them.
    let stored = state.images.meta(image_id, &user.token).await?;
    let fetch = || state.images.fetch(image_id, &user.token);
    let prediction = state.predictor.predict_stored(stored.sha256, fetch).await?;
    Ok(Json(PredictionBody::new(Some(image_id), prediction)))
}

/// Predicts for an image sent in the request: the raw bytes as the body (any `image/*` type,
/// `application/octet-stream` or no `Content-Type`), or the multipart/form-data field `file`.
/// The type is decided by the bytes, not by the `Content-Type`.
#[utoipa::path(
    post,
    path = "/predict",
    tag = "inference",
    request_body(
        content(
            (inline(Binary) = "image/jpeg"),
            (inline(Binary) = "image/png"),
            (inline(Binary) = "image/webp"),
            (inline(Binary) = "image/gif"),
            (inline(Binary) = "application/octet-stream"),
            (FileUpload = "multipart/form-data"),
        ),
        description = "The image as the raw body, or as multipart/form-data field `file`"
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The prediction", body = PredictionBody),
        (status = 400, description = "A malformed multipart body, or a body that broke off"),
        (status = 401, description = "Missing or invalid token"),
        (status = 413, description = "Larger than MAX_UPLOAD_BYTES"),
        (status = 415, description = "A `Content-Type` other than the ones above, or not a JPEG, PNG, WebP or GIF image"),
        (status = 422, description = "No `file` field, or an empty, corrupt or too large (in pixels) image"),
        (status = 503, description = "Busy or model loading; see Retry-After"),
    )
)]
#[tracing::instrument(skip_all, fields(user = %user.id))]
async fn predict_upload(
    State(state): State<AppState>,
    user: AuthUser,
    request: Request,
) -> Result<Json<PredictionBody>> {
    state.predictor.model()?;
    // A place in the pool before the body is read, as for a stored image before its fetch: a
    // saturated service answers 503 at once instead of first reading an upload it cannot score.
    let reservation = state.predictor.pool().reserve().map_err(|_| Error::Busy)?;
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
    let prediction = state.predictor.predict(bytes, reservation).await?;
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

#[cfg(test)]
mod tests {
    use common::imaging::ImageType;
    use serde_json::{json, Value};

    fn request_body() -> (Value, Value) {
        let doc = super::super::openapi();
        let body = doc["paths"]["/predict"]["post"]["requestBody"].clone();
        (doc, body)
    }

    #[test]
    fn a_raw_body_is_binary_in_each_accepted_image_type_or_octet_stream() {
        let (_, body) = request_body();
        let raw = ImageType::ALL
            .iter()
            .map(|kind| kind.mime())
            .chain(["application/octet-stream"]);
        for media_type in raw {
            let schema = &body["content"][media_type]["schema"];
            assert_eq!(schema["type"], "string", "{media_type}");
            assert_eq!(schema["format"], "binary", "{media_type}");
        }
    }

    #[test]
    fn a_multipart_body_carries_the_image_in_a_binary_file_field() {
        let (doc, body) = request_body();
        let schema = &body["content"]["multipart/form-data"]["schema"]["$ref"];
        let name = schema
            .as_str()
            .and_then(|s| s.strip_prefix("#/components/schemas/"))
            .expect("a schema reference");
        let form = &doc["components"]["schemas"][name];
        assert_eq!(form["required"], json!(["file"]));
        assert_eq!(form["properties"]["file"]["type"], "string");
        assert_eq!(form["properties"]["file"]["format"], "binary");
    }

    #[test]
    fn every_operation_documents_its_problems_and_the_bearer_scheme() {
        let doc = super::super::openapi();
        assert_eq!(common::openapi::shortcomings(&doc), Vec::<String>::new());
        for (method, path, statuses) in [
            (
                "get",
                "/predict/{image_id}",
                &["401", "404", "422", "503"][..],
            ),
            (
                "post",
                "/predict",
                &["400", "401", "413", "415", "422", "503"],
            ),
            ("get", "/model", &["401", "503"]),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(operation["security"], json!([{"bearer": []}]), "{path}");
            for status in statuses {
                let response = operation["responses"].get(status);
                assert!(response.is_some(), "{method} {path} {status}");
            }
        }
    }
}
