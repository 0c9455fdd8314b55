//! Building the application from settings, and running it.

use std::sync::Arc;

use axum::Router;
use common::{
    auth::TokenVerifier,
    metrics::{Metrics, SLOW_BUCKETS},
    ops,
    server::{build_router, shutdown_signal, Application, ServiceParts},
};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{
    commands, config::Settings, db, keys, metrics::UsersMetrics, openapi, passwords::Passwords,
    rate_limit::LoginLimiter, routes, state::AppState, tokens::TokenSigner,
};

/// The complete users_service: the router `serve` runs, and handles tests may use.
pub struct UsersApp {
    /// Application routes plus the shared ops routes and layers.
    pub router: Router,
    /// The database pool.
    pub db: AnyPool,
    /// The permits bounding concurrent argon2 hashes; holding them all keeps logins in flight.
    pub argon2_permits: Arc<Semaphore>,
}

/// Connects the database (running migrations), loads or generates the signing key, creates the
/// configured first admin, and assembles the router.
pub async fn build(settings: &Settings) -> anyhow::Result<UsersApp> {
    let metrics = Metrics::new("users", &settings.server.instance_name, SLOW_BUCKETS)?;
    let users_metrics = Arc::new(UsersMetrics::register(&metrics)?);
    let db = db::connect(&settings.database_url).await?;

    let (key_file, generate) = (settings.signing_key_file.clone(), settings.generate_key);
    let key = tokio::task::spawn_blocking(move || keys::load_or_generate(&key_file, generate))
        .await?
        .map_err(|e| e.context("JWT_SIGNING_KEY_FILE"))?;
    let signer = TokenSigner::new(
        &key,
        &settings.issuer,
        &settings.audience,
        settings.access_token_ttl,
    );
    // Verified exactly as the other services do, from the public key alone.
    let verifier = TokenVerifier::from_public_keys(
        &[signer.public_key().to_vec()],
        &settings.issuer,
        &settings.audience,
    );

    let (argon2, seconds) = (settings.argon2, users_metrics.argon2_seconds.clone());
    let passwords =
        Arc::new(tokio::task::spawn_blocking(move || Passwords::new(argon2, seconds)).await??);
    if let Some(admin) = &settings.bootstrap_admin {
        commands::bootstrap_admin(&db, &passwords, admin).await?;
    }

    let state = AppState {
        db: db.clone(),
        signer: Arc::new(signer),
        verifier: Arc::new(verifier),
        passwords: passwords.clone(),
        limiter: Arc::new(LoginLimiter::new(
            settings.login_rate_per_ip,
            settings.login_rate_per_user,
        )),
        metrics: users_metrics,
        trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
        refresh_token_ttl: settings.refresh_token_ttl,
    };
    let ready_db = db.clone();
    let readiness = ops::readiness(move || {
        let db = ready_db.clone();
        async move { db::ping(&db).await }
    });
    let router = build_router(ServiceParts {
        settings: settings.server.clone(),
        metrics,
        app: routes::router(state),
        readiness,
        openapi: openapi::document()?,
    });
    Ok(UsersApp {
        router,
        db,
        argon2_permits: passwords.permits(),
    })
}

/// `serve`: binds `LISTEN_ADDR` and serves until SIGTERM/SIGINT.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = build(&settings).await?;
    let application = Application::bind(
        settings.server.listen_addr,
        app.router,
        settings.server.shutdown_grace,
    )
    .await?;
    tracing::info!(addr = %application.local_addr()?, instance = settings.server.instance_name, "users_service listening");
    application.run_until_stopped(shutdown_signal()).await?;
    app.db.close().await;
    tracing::info!("users_service stopped");
    Ok(())
}
