//! The HTTP endpoints of images_service and their OpenAPI document.

mod images;
mod upload;

use axum::Router;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{db::ImageRow, state::AppState};

/// Every application route, state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(upload::router(state.limits))
        .merge(images::router())
        .with_state(state)
}

/// An image's metadata as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageMeta {
    #[schema(value_type = String, format = Uuid)]
    image_id: String,
    /// Hex SHA-256 of the bytes; the download's ETag is this value quoted.
    sha256: String,
    /// Decided from the bytes: `image/jpeg`, `image/png`, `image/webp` or `image/gif`.
    content_type: String,
    width: i64,
    height: i64,
    /// Size of the file in bytes.
    bytes: i64,
    /// RFC 3339 time of the first upload.
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<ImageRow> for ImageMeta {
    fn from(row: ImageRow) -> Self {
        Self {
            image_id: row.id,
            sha256: row.sha256,
            content_type: row.content_type,
            width: row.width,
            height: row.height,
            bytes: row.bytes,
            created_at: row.created_at.to_rfc3339(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Forgettable Images — images", description = "Upload, list, download and delete your images."),
    paths(upload::upload, images::list, images::download, images::meta, images::delete),
    components(schemas(ImageMeta, images::ImageList)),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the service.
pub fn openapi() -> serde_json::Value {
    common::openapi::document(ApiDoc::openapi())
}
