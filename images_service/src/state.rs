//! The state every images_service handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use common::{auth::TokenVerifier, config::ImageLimits};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{metrics::ImagesMetrics, storage::BlobStore};

/// What every handler can reach, cheap to clone: a pool, the blob store and `Arc`s. `FromRef`
/// lets a handler or extractor ask for one part alone (the shared `AuthUser` extractor takes
/// the verifier).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: AnyPool,
    pub store: BlobStore,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: ImagesMetrics,
    pub limits: ImageLimits,
    /// Bounds the decodes running on the blocking pool at once.
    pub decoders: Arc<Semaphore>,
}
