//! Building and running the service: database, blob store, start-up sweep, router, listener.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::extract::FromRef;
use common::{
    auth::TokenVerifier,
    config::ImageLimits,
    metrics::{Metrics, SLOW_BUCKETS},
    ops::readiness,
    server::{self, build_router, ServiceParts},
};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::{config::Settings, db, metrics::ImageMetrics, routes, storage::BlobStore};

/// What every handler reaches through `State`.
#[derive(Clone)]
pub struct AppState {
    pub pool: AnyPool,
    pub store: BlobStore,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: ImageMetrics,
    pub limits: ImageLimits,
    /// Bounds the decodes running on the blocking pool at once.
    pub decoders: Arc<Semaphore>,
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// A bound, ready images_service.
pub struct Application {
    server: server::Application,
}

impl Application {
    /// Opens the database (migrating it) and the blob store, sweeps what a crash left behind,
    /// and binds the listener. `verifier` checks access tokens (from `TokenVerifier::from_env`
    /// in production; tests pass their own key).
    pub async fn build(settings: Settings, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        let metrics = Metrics::new("images", &settings.server.instance_name, SLOW_BUCKETS)?;
        let image_metrics = ImageMetrics::register(&metrics)?;
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
            pool: pool.clone(),
            store: store.clone(),
            verifier,
            metrics: image_metrics,
            limits: settings.limits,
            decoders: Arc::new(Semaphore::new(decoders)),
        };
        let ready = readiness(move || {
            let (pool, store) = (pool.clone(), store.clone());
            async move {
                db::check(&pool).await?;
                store.check().await
            }
        });
        let router = build_router(ServiceParts {
            settings: settings.server.clone(),
            metrics,
            app: routes::router(state, settings.limits),
            readiness: ready,
            openapi: routes::openapi(),
        });
        let server = server::Application::bind_from_settings(&settings.server, router).await?;
        Ok(Self { server })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.server.run_until_stopped(shutdown).await
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
