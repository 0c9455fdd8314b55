//! The state every users_service handler can reach.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;
use common::auth::TokenVerifier;
use ipnet::IpNet;
use sqlx::AnyPool;

use crate::{
    metrics::UsersMetrics, passwords::Passwords, rate_limit::LoginLimiter, tokens::TokenSigner,
};

/// What every handler can reach, cheap to clone: a pool and `Arc`s. `FromRef` lets a handler or
/// extractor ask for one part alone (the shared `AuthUser` extractor takes the verifier).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: AnyPool,
    pub signer: Arc<TokenSigner>,
    pub verifier: Arc<TokenVerifier>,
    pub passwords: Arc<Passwords>,
    pub limiter: Arc<LoginLimiter>,
    pub metrics: Arc<UsersMetrics>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub refresh_token_ttl: Duration,
}
