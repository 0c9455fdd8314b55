//! The state every users_service handler can reach.

use std::{sync::Arc, time::Duration};

use common::{
    auth::TokenVerifier,
    state::{HoldsVerifier, SharedState},
};
use ipnet::IpNet;
use sqlx::AnyPool;

use crate::{
    metrics::UsersMetrics, passwords::Passwords, rate_limit::LoginLimiter, tokens::TokenSigner,
};

/// What every handler can reach: [`Shared`] behind one `Arc`.
pub type AppState = SharedState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    pub db: AnyPool,
    pub signer: Arc<TokenSigner>,
    pub verifier: Arc<TokenVerifier>,
    pub passwords: Arc<Passwords>,
    pub limiter: Arc<LoginLimiter>,
    pub metrics: Arc<UsersMetrics>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub refresh_token_ttl: Duration,
}

impl HoldsVerifier for Shared {
    fn verifier(&self) -> &Arc<TokenVerifier> {
        &self.verifier
    }
}
