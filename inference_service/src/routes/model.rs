//! `GET /model`: which model answers, with which engine and precision, its input and threshold,
//! and its licence.

use axum::{routing::get, Json, Router};
use common::auth::AuthUser;
use serde::Serialize;
use utoipa::OpenApi;

use crate::{
    error::Result,
    model::{manifest::OutputSpec, EngineKind, Precision},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    paths(describe),
    components(schemas(ModelInfo, InputInfo, EngineKind, Precision))
)]
pub(super) struct ModelApi;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/model", get(describe))
}

#[derive(Serialize, utoipa::ToSchema)]
struct InputInfo {
    name: String,
    height: u32,
    width: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ModelInfo {
    name: String,
    version: String,
    sha256: String,
    /// The engine that runs the model (`INFERENCE_ENGINE`).
    engine: EngineKind,
    /// The numbers the model computes with (its manifest's `precision`).
    precision: Precision,
    input: InputInfo,
    /// `sigmoid_score` or `softmax`.
    output: String,
    /// Scores below it are `forgettable`.
    threshold: f32,
    licence: String,
}

/// The loaded model.
#[utoipa::path(
    get,
    path = "/model",
    tag = "inference",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The model in use", body = ModelInfo),
        (status = 401, description = "Missing or invalid token"),
        (status = 503, description = "The model is still loading"),
    )
)]
#[tracing::instrument(skip_all, fields(user = %user.id))]
async fn describe(
    axum::extract::State(state): axum::extract::State<AppState>,
    user: AuthUser,
) -> Result<Json<ModelInfo>> {
    let model = state.predictor.model()?;
    let m = &model.manifest;
    Ok(Json(ModelInfo {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: model.sha256.clone(),
        engine: model.engine(),
        precision: m.precision,
        input: InputInfo {
            name: m.input.name.clone(),
            height: m.input.height,
            width: m.input.width,
        },
        output: match m.output {
            OutputSpec::SigmoidScore => "sigmoid_score".to_owned(),
            OutputSpec::Softmax { .. } => "softmax".to_owned(),
        },
        threshold: state.predictor.threshold(&model),
        licence: m.licence.clone(),
    }))
}
