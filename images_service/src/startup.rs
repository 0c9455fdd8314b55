//! Building and running the service: database, blob store, start-up sweep, router, listener.

use std::{future::Future, sync::Arc};

use anyhow::Context;
use common::{
    auth::TokenVerifier,
    metrics::{Metrics, SLOW_BUCKETS},
    ops::readiness,
    server::{self, build_router, ServiceParts},
    service::{token_verifier_from_env, Service},
};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{
    config::Settings, db, metrics::ImagesMetrics, routes, state::AppState, storage::BlobStore,
};

/// A bound, ready images_service.
pub struct Application {
    server: server::Application,
}

impl Application {
    /// Opens the database (migrating it) and the blob store, sweeps what a crash left behind,
    /// and binds the listener; access tokens are checked with `verifier` ([`Service::build`]
    /// reads the keys `JWKS_URL` or `JWT_PUBLIC_KEY_FILE` names; tests pass their own key).
    pub async fn build_with_verifier(
        settings: Settings,
        verifier: Arc<TokenVerifier>,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new("images", &settings.server.instance_name, SLOW_BUCKETS)?;
        let image_metrics = ImagesMetrics::register(&metrics)?;
        let pool = db::connect(&settings.database_url).await?;
        tracing::info!(database = ?settings.database_url, "database ready");
        let store = BlobStore::open(&settings.blob_store_url).context("BLOB_STORE_URL")?;
        store
            .check()
            .await
            .map_err(anyhow::Error::msg)
            .context("BLOB_STORE_URL")?;
        let swept = sweep_orphans(&pool, &store)
            .await
            .context("start-up sweep")?;
        image_metrics.orphans_swept.inc_by(swept);
        tracing::info!(blob_store = %settings.blob_store_url, swept, "blob store ready");

        let decoders = std::thread::available_parallelism().map_or(2, usize::from);
        let state = AppState {
            db: pool.clone(),
            store: store.clone(),
            verifier,
            metrics: image_metrics,
            limits: settings.limits,
            decoders: Arc::new(Semaphore::new(decoders)),
        };
        let ready = readiness(move || {
            let (pool, store) = (pool.clone(), store.clone());
            async move {
                db::ping(&pool).await?;
                store.check().await
            }
        });
        let router = build_router(ServiceParts {
            settings: settings.server.clone(),
            metrics,
            app: routes::router(state),
            readiness: ready,
            openapi: routes::openapi(),
        });
        let server = server::Application::bind_from_settings(&settings.server, router).await?;
        Ok(Self { server })
    }
}

impl Service for Application {
    const NAME: &'static str = "images_service";
    const ABOUT: &'static str = "Forgettable Images: image upload, listing, download and deletion";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Settings = Settings;

    async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_verifier(settings, token_verifier_from_env().await?).await
    }

    fn server(&self) -> &server::Application {
        &self.server
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        Ok(self.server.run_until_stopped(shutdown).await?)
    }
}

/// Removes stale temporaries and committed blobs that have no row (a crash between commit and
/// insert, or between row and blob deletion). Runs before the listener accepts uploads.
pub async fn sweep_orphans(pool: &AnyPool, store: &BlobStore) -> anyhow::Result<u64> {
    let mut swept = store.remove_temporaries().await?;
    for (key, id) in store.committed().await? {
        let known = match id {
            Some(id) => db::exists(pool, id).await?,
            None => false,
        };
        if !known {
            tracing::info!(%key, "removing a blob without metadata");
            store.remove(&key).await?;
            swept += 1;
        }
    }
    Ok(swept)
}
