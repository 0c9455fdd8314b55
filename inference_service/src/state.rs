//! The state every inference_service handler can reach.

use std::sync::Arc;

use common::{
    auth::TokenVerifier,
    config::ImageLimits,
    state::{HoldsVerifier, SharedState},
};

use crate::{images::ImagesClient, predictor::Predictor};

/// What every handler can reach: [`Shared`] behind one `Arc`.
pub type AppState = SharedState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    pub predictor: Arc<Predictor>,
    pub images: ImagesClient,
    pub verifier: Arc<TokenVerifier>,
    pub limits: ImageLimits,
}

impl HoldsVerifier for Shared {
    fn verifier(&self) -> &Arc<TokenVerifier> {
        &self.verifier
    }
}
