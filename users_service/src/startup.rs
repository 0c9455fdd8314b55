//! Building users_service from its settings (database, signing key, first admin, router,
//! listener) and running it.

use std::{future::Future, sync::Arc};

use common::{
    auth::TokenVerifier,
    metrics::{Metrics, SLOW_BUCKETS},
    ops,
    server::{self, build_router, ServiceParts},
    service::Service,
};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{
    commands,
    config::Settings,
    db, keys,
    metrics::UsersMetrics,
    passwords::Passwords,
    rate_limit::LoginLimiter,
    routes,
    state::{AppState, Shared},
    tokens::TokenSigner,
};

/// A bound, ready users_service.
pub struct Application {
    server: server::Application,
    db: AnyPool,
    argon2_permits: Arc<Semaphore>,
}

impl Application {
    /// The database pool.
    pub fn db(&self) -> AnyPool {
        self.db.clone()
    }

    /// The permits bounding concurrent argon2 hashes; holding them all keeps logins in flight.
    pub fn argon2_permits(&self) -> Arc<Semaphore> {
        self.argon2_permits.clone()
    }
}

impl Service for Application {
    const NAME: &'static str = "users_service";
    const ABOUT: &'static str = "Forgettable Images accounts and tokens service";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Settings = Settings;

    fn openapi() -> serde_json::Value {
        routes::openapi()
    }

    /// Connects the database (running migrations), loads or generates the signing key, creates
    /// the configured first admin, assembles the router and binds `LISTEN_ADDR`.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
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

        let argon2 = settings.argon2;
        let hash_metrics = users_metrics.hash_metrics();
        let passwords = Arc::new(
            tokio::task::spawn_blocking(move || Passwords::new(argon2, hash_metrics)).await??,
        );
        if let Some(admin) = &settings.bootstrap_admin {
            commands::bootstrap_admin(&db, &passwords, admin).await?;
        }

        let state = AppState::new(Shared {
            db: db.clone(),
            signer: Arc::new(signer),
            verifier: Arc::new(verifier),
            passwords: passwords.clone(),
            limiter: Arc::new(LoginLimiter::new(
                settings.login_rate_per_ip,
                settings.login_rate_per_user,
                settings.register_rate_per_ip,
            )),
            metrics: users_metrics,
            trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
            refresh_token_ttl: settings.refresh_token_ttl,
        });
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
            openapi: routes::openapi(),
        });
        let server = server::Application::bind_from_settings(&settings.server, router).await?;
        Ok(Self {
            server,
            db,
            argon2_permits: passwords.permits(),
        })
    }

    fn server(&self) -> &server::Application {
        &self.server
    }

    /// Serves until `shutdown` completes, drains in-flight requests, then closes the pool.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.run_until_stopped(shutdown).await?;
        self.db.close().await;
        Ok(())
    }
}
