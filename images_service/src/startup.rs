//! Building and running the service: database, blob store, start-up sweep, router, listener.

use std::{future::Future, sync::Arc};

use anyhow::{bail, Context};
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
    config::Settings,
    db,
    metrics::ImagesMetrics,
    recent_rows::RecentRows,
    routes,
    state::{AppState, Shared},
    storage::BlobStore,
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
        let store = BlobStore::open(&settings.blob_store_url)
            .context("BLOB_STORE_URL")?
            .with_read_cache(settings.blob_cache_bytes);
        store
            .check()
            .await
            .map_err(anyhow::Error::msg)
            .context("BLOB_STORE_URL")?;
        let swept = match pair(&pool, &store).await? {
            Pairing::Paired => sweep_orphans(&pool, &store).await,
            Pairing::New => store.remove_temporaries().await,
        }
        .context("start-up sweep")?;
        image_metrics.orphans_swept.inc_by(swept);
        tracing::info!(blob_store = %settings.blob_store_url, swept, "blob store ready");

        let decoders = std::thread::available_parallelism().map_or(2, usize::from);
        let revocations = verifier.revocations().clone();
        let state = AppState::new(Shared {
            db: pool.clone(),
            store: store.clone(),
            rows: RecentRows::default(),
            verifier,
            metrics: image_metrics,
            limits: settings.limits,
            decoders: Arc::new(Semaphore::new(decoders)),
        });
        let ready = readiness(move || {
            let (pool, store, revocations) = (pool.clone(), store.clone(), revocations.clone());
            async move {
                db::ping(&pool).await?;
                store.check().await?;
                revocations.readiness()
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

    fn openapi() -> serde_json::Value {
        routes::openapi()
    }

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

/// Whether the database and the blob store are known to belong together.
#[derive(Debug, PartialEq, Eq)]
pub enum Pairing {
    /// Both carry the same installation id: a blob without a row is an orphan of a crash.
    Paired,
    /// Neither had an id; both have one now. Only temporaries are swept this time: a blob
    /// without a row might be a sign of the wrong database rather than of a crash.
    New,
}

/// Checks that the database and the blob store belong to the same installation, giving both an
/// id when neither has one. A database that was never used with this store (a wrong or empty
/// `DATABASE_URL`) or a store that was never used with this database refuses to start, so the
/// sweep can never take every stored image for an orphan.
pub async fn pair(pool: &AnyPool, store: &BlobStore) -> anyhow::Result<Pairing> {
    let in_database = db::installation(pool).await.context("DATABASE_URL")?;
    let in_store = store.installation().await.context("BLOB_STORE_URL")?;
    match (in_database, in_store) {
        (Some(database), Some(stored)) if database == stored => Ok(Pairing::Paired),
        (Some(database), Some(stored)) => bail!(
            "DATABASE_URL and BLOB_STORE_URL belong to different installations (database \
             {database}, blob store {stored}); point both at the pair that was used together. \
             Nothing was changed."
        ),
        (None, Some(stored)) => bail!(
            "DATABASE_URL: this database was never used with the blob store at BLOB_STORE_URL \
             (installation {stored}); with it every stored image would lose its metadata. Point \
             DATABASE_URL at this store's database. Nothing was changed."
        ),
        (Some(database), None) if !store.committed().await?.iter().any(|(_, id)| id.is_some()) => {
            // The store was emptied or lost; a crash between the two marks leaves this too.
            store.set_installation(&database).await?;
            Ok(Pairing::Paired)
        }
        (Some(database), None) => bail!(
            "BLOB_STORE_URL: this blob store holds images but was never used with the database \
             at DATABASE_URL (installation {database}). Point BLOB_STORE_URL at this database's \
             store. Nothing was changed."
        ),
        (None, None) => {
            let id = uuid::Uuid::new_v4().to_string();
            db::set_installation(pool, &id).await?;
            store.set_installation(&id).await?;
            tracing::info!(installation = %id, "database and blob store paired");
            Ok(Pairing::New)
        }
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
