//! The state every images_service handler can reach.

use std::sync::Arc;

use common::{
    auth::TokenVerifier,
    config::ImageLimits,
    state::{HoldsVerifier, SharedState},
};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{metrics::ImagesMetrics, recent_rows::RecentRows, storage::BlobStore};

/// What every handler can reach: [`Shared`] behind one `Arc`.
pub type AppState = SharedState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    pub db: AnyPool,
    pub store: BlobStore,
    /// Image rows read recently (downloads and metadata reads).
    pub rows: RecentRows,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: ImagesMetrics,
    pub limits: ImageLimits,
    /// Bounds the decodes running on the blocking pool at once.
    pub decoders: Arc<Semaphore>,
}

impl HoldsVerifier for Shared {
    fn verifier(&self) -> &Arc<TokenVerifier> {
        &self.verifier
    }
}
