//! Building and running the service: manifest check, background model load, router, listener.

use std::{future::Future, path::PathBuf, sync::Arc};

use anyhow::Context;
use common::{
    auth::TokenVerifier,
    metrics::{Metrics, SLOW_BUCKETS},
    ops::readiness,
    server::{self, build_router, ServiceParts},
    service::{token_verifier_from_env, Service},
};

use crate::{
    config::Settings,
    images::ImagesClient,
    metrics::InferenceMetrics,
    model::{LoadedModel, Manifest, Parallelism, Runtime},
    predictor::{ModelState, Predictor},
    routes,
    state::{AppState, Shared},
};

/// A bound inference_service whose model is loading in the background.
pub struct Application {
    server: server::Application,
    predictor: Arc<Predictor>,
}

impl Application {
    /// Checks the manifest (a missing model fails here, naming `cargo xtask model`), starts the
    /// engine (a missing ONNX Runtime library fails here, naming `ORT_DYLIB_PATH`), starts
    /// loading the model on the blocking pool and binds the listener, so `/healthz` answers at
    /// once and `/readyz` turns 200 when the model is ready. Access tokens are checked with the
    /// `verifier` ([`Service::build`] reads the keys `JWKS_URL` or `JWT_PUBLIC_KEY_FILE` names;
    /// tests pass their own key).
    pub async fn build_with_verifier(
        settings: Settings,
        verifier: Arc<TokenVerifier>,
    ) -> anyhow::Result<Self> {
        let manifest = Manifest::load(&settings.model_dir).context("MODEL_DIR")?;
        let engine = &settings.engine;
        let runtime = Runtime::start(engine.kind, engine.onnxruntime_library.as_deref())
            .with_context(|| format!("INFERENCE_ENGINE={}", engine.kind))?;
        if let Runtime::OnnxRuntime(library) = &runtime {
            tracing::info!(library = %library.path().display(), "ONNX Runtime loaded");
        }
        let metrics = Metrics::new("inference", &settings.server.instance_name, SLOW_BUCKETS)?;
        let inference_metrics = InferenceMetrics::register(&metrics)?;
        let predictor = Arc::new(Predictor::new(&settings, inference_metrics));
        spawn_model_load(
            predictor.clone(),
            settings.model_dir.clone(),
            manifest,
            runtime,
            settings.pool.parallelism(),
        );

        let revocations = verifier.revocations().clone();
        let state = AppState::new(Shared {
            predictor: predictor.clone(),
            images: ImagesClient::new(&settings.images_url, settings.limits.max_upload_bytes)?,
            verifier,
            limits: settings.limits,
        });
        let ready = {
            let predictor = predictor.clone();
            readiness(move || {
                let (predictor, revocations) = (predictor.clone(), revocations.clone());
                async move {
                    predictor.readiness()?;
                    revocations.readiness()
                }
            })
        };
        let router = build_router(ServiceParts {
            settings: settings.server.clone(),
            metrics,
            app: routes::router(state),
            readiness: ready,
            openapi: routes::openapi(),
        });
        let server = server::Application::bind_from_settings(&settings.server, router).await?;
        Ok(Self { server, predictor })
    }

    /// The predictor, to watch the model load or hold a worker.
    pub fn predictor(&self) -> Arc<Predictor> {
        self.predictor.clone()
    }
}

impl Service for Application {
    const NAME: &'static str = "inference_service";
    const ABOUT: &'static str = "Forgettable Images: memorability predictions with an ONNX model";
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

    /// Serves until `shutdown` completes (then drains in-flight requests), or fails when the
    /// model cannot be loaded: a service that can never predict should not look alive.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut states = self.predictor.subscribe();
        let failed = async move {
            let reason = match states
                .wait_for(|s| matches!(s, ModelState::Failed(_)))
                .await
            {
                Ok(state) => match &*state {
                    ModelState::Failed(reason) => Some(reason.clone()),
                    _ => None,
                },
                Err(_) => None,
            };
            match reason {
                Some(reason) => reason,
                // The predictor outlives the server, so this only happens at shutdown.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = self.server.run_until_stopped(shutdown) => Ok(result?),
            reason = failed => anyhow::bail!("the model failed to load: {reason}"),
        }
    }
}

/// Loads the model into `runtime` on the blocking pool and installs it (or the reason it failed).
fn spawn_model_load(
    predictor: Arc<Predictor>,
    dir: PathBuf,
    manifest: Manifest,
    runtime: Runtime,
    parallelism: Parallelism,
) {
    tokio::spawn(async move {
        tracing::info!(
            model = %manifest.name,
            version = %manifest.version,
            precision = manifest.precision.as_str(),
            engine = %runtime.kind(),
            workers = parallelism.lanes,
            threads = parallelism.threads,
            dir = %dir.display(),
            "loading the model"
        );
        // The model's terms travel with it: say them wherever the service runs.
        tracing::info!(licence = %manifest.licence, "model licence");
        let loaded = tokio::task::spawn_blocking(move || {
            LoadedModel::load(&dir, manifest, &runtime, parallelism)
        })
        .await;
        let state = match loaded {
            Ok(Ok(model)) => {
                tracing::info!(
                    model = %model.manifest.name,
                    version = %model.manifest.version,
                    sha256 = %model.sha256,
                    engine = %model.engine(),
                    seconds = model.load_seconds,
                    "model ready"
                );
                ModelState::Ready(Arc::new(model))
            }
            Ok(Err(e)) => {
                tracing::error!(error = format!("{e:#}"), "cannot load the model");
                ModelState::Failed(format!("{e:#}"))
            }
            Err(e) => ModelState::Failed(format!("the loading task failed: {e}")),
        };
        predictor.set_state(state);
    });
}
