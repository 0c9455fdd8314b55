//! The state every inference_service handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use common::{auth::TokenVerifier, config::ImageLimits};

use crate::{images::ImagesClient, predictor::Predictor};

/// What every handler can reach, cheap to clone: `Arc`s and a client. `FromRef` lets a handler
/// or extractor ask for one part alone (the shared `AuthUser` extractor takes the verifier).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub predictor: Arc<Predictor>,
    pub images: ImagesClient,
    pub verifier: Arc<TokenVerifier>,
    pub limits: ImageLimits,
}
