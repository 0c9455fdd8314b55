//! The HTTP endpoints of inference_service and their OpenAPI document.

mod model;
mod predict;

use axum::{extract::DefaultBodyLimit, Router};
use utoipa::OpenApi;

use crate::state::AppState;

/// Room for multipart boundaries and headers around a maximal image.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Every application route, with state applied.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(
        state
            .limits
            .max_upload_bytes
            .saturating_add(MULTIPART_OVERHEAD),
    )
    .unwrap_or(usize::MAX);
    Router::new()
        .merge(predict::router())
        .merge(model::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "inference_service",
        description = "Predicts whether an image is forgettable with an ONNX memorability model. \
                       Errors are RFC 9457 `application/problem+json`.",
    ),
    tags((name = "inference", description = "Memorability predictions and the model behind them"))
)]
struct ApiDoc;

/// The whole OpenAPI document as JSON.
pub fn openapi() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(predict::PredictApi::openapi());
    doc.merge(model::ModelApi::openapi());
    common::openapi::document(doc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_every_endpoint() {
        let doc = super::openapi();
        let paths = doc["paths"].as_object().expect("paths");
        for path in ["/predict/{image_id}", "/predict", "/model"] {
            assert!(paths.contains_key(path), "{path} missing");
        }
    }
}
