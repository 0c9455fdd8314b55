//! From image bytes to a labelled score: screen the bytes (`common::imaging`, the same checks as
//! images_service), cache by (image SHA-256, model SHA-256), otherwise decode, preprocess and run
//! the model in the bounded pool.
//!
//! A stored image is fetched only when needed: the cache is asked with the SHA-256 images_service
//! knows, a place in the pool is reserved, and at most `INFERENCE_DOWNLOADS` images are held in
//! memory at once, from their first fetched byte until they are decoded.

use std::{future::Future, io::Cursor, sync::Arc, time::Instant};

use bytes::Bytes;
use common::{
    config::ImageLimits,
    imaging::{self, ImageType},
};
use moka::sync::Cache;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::{
    config::Settings,
    error::{Error, Result},
    metrics::InferenceMetrics,
    model::{pool::Reservation, InferencePool, LoadedModel, PoolError},
};

/// Where the model is in its life.
#[derive(Debug, Clone, Default)]
pub enum ModelState {
    #[default]
    Loading,
    Ready(Arc<LoadedModel>),
    Failed(String),
}

/// The answer's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Forgettable,
    Memorable,
}

impl Label {
    /// `forgettable` when `score < threshold`.
    pub fn of(score: f32, threshold: f32) -> Self {
        if score < threshold {
            Label::Forgettable
        } else {
            Label::Memorable
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Forgettable => "forgettable",
            Label::Memorable => "memorable",
        }
    }
}

/// Which model answered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A prediction, before the route adds the image id.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub label: Label,
    pub score: f32,
    pub threshold: f32,
    pub model: ModelRef,
    pub elapsed_ms: f64,
}

type CacheKey = ([u8; 32], Arc<str>);

/// Predicts with the loaded model.
pub struct Predictor {
    state: watch::Sender<ModelState>,
    pool: InferencePool,
    /// Stored images held in memory at once (`INFERENCE_DOWNLOADS`).
    downloads: Arc<Semaphore>,
    cache: Cache<CacheKey, f32>,
    metrics: InferenceMetrics,
    limits: ImageLimits,
    threshold: Option<f32>,
}

impl Predictor {
    pub fn new(settings: &Settings, metrics: InferenceMetrics) -> Self {
        let pool = settings.pool;
        Self {
            state: watch::Sender::new(ModelState::Loading),
            pool: InferencePool::new(pool.workers, pool.queue, metrics.clone()),
            downloads: Arc::new(Semaphore::new(pool.downloads)),
            cache: Cache::new(settings.cache_entries),
            metrics,
            limits: settings.limits,
            threshold: settings.threshold,
        }
    }

    /// Installs the loaded model (or the reason it failed) and updates the model metrics.
    pub fn set_state(&self, state: ModelState) {
        if let ModelState::Ready(model) = &state {
            let m = &model.manifest;
            self.metrics.model_load_seconds.set(model.load_seconds);
            self.metrics
                .model_info
                .with_label_values(&[m.name.as_str(), m.version.as_str(), model.sha256.as_str()])
                .set(1);
            self.metrics.model_loaded.set(1);
        }
        self.state.send_replace(state);
    }

    /// Watches the model's state (start-up waits on it to stop when loading fails).
    pub fn subscribe(&self) -> watch::Receiver<ModelState> {
        self.state.subscribe()
    }

    /// The loaded model, or 503 while it loads.
    pub fn model(&self) -> Result<Arc<LoadedModel>> {
        match &*self.state.borrow() {
            ModelState::Ready(model) => Ok(model.clone()),
            ModelState::Loading | ModelState::Failed(_) => Err(Error::ModelNotReady),
        }
    }

    /// Whether the service can predict, and why not.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        match &*self.state.borrow() {
            ModelState::Ready(_) => Ok(()),
            ModelState::Loading => Err("the model is loading".to_owned()),
            ModelState::Failed(reason) => Err(format!("the model failed to load: {reason}")),
        }
    }

    /// The threshold in force: `PREDICT_THRESHOLD`, else the manifest's.
    pub fn threshold(&self, model: &LoadedModel) -> f32 {
        self.threshold.unwrap_or(model.manifest.threshold)
    }

    /// The bounded pool the model runs in.
    pub fn pool(&self) -> &InferencePool {
        &self.pool
    }

    /// Scores an encoded image in the place `reservation` holds (given back at once when the
    /// cache knows the answer).
    #[tracing::instrument(skip_all, fields(bytes = bytes.len()))]
    pub async fn predict(&self, bytes: Bytes, reservation: Reservation) -> Result<Prediction> {
        let started = Instant::now();
        let model = self.model()?;
        // Refused files (too large, not an image, truncated) are neither hashed nor cached.
        let kind = imaging::screen(&bytes, &self.limits)?;
        let hashed = bytes.clone();
        let digest: [u8; 32] = tokio::task::spawn_blocking(move || Sha256::digest(&hashed).into())
            .await
            .map_err(|e| Error::Unexpected(e.into()))?;
        let key = Self::key(digest, &model);
        let score = match self.cached(&key) {
            Some(score) => score,
            None => {
                let score = self
                    .run(reservation, model.clone(), bytes, kind, None)
                    .await?;
                self.cache.insert(key, score);
                score
            }
        };
        Ok(self.answer(score, &model, started))
    }

    /// Scores a stored image whose bytes have SHA-256 `digest`, calling `fetch` for them only
    /// when the cache does not know the answer, once a place in the pool is reserved (503 at
    /// once when the queue is full) and a download slot is free.
    #[tracing::instrument(skip_all)]
    pub async fn predict_stored<F, Fut>(&self, digest: [u8; 32], fetch: F) -> Result<Prediction>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes>>,
    {
        let started = Instant::now();
        let model = self.model()?;
        let key = Self::key(digest, &model);
        if let Some(score) = self.cached(&key) {
            return Ok(self.answer(score, &model, started));
        }
        let reservation = self.pool.reserve().map_err(|_| Error::Busy)?;
        let download = self
            .downloads
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Unexpected(e.into()))?;
        let bytes = fetch().await?;
        let kind = imaging::screen(&bytes, &self.limits)?;
        let score = self
            .run(reservation, model.clone(), bytes, kind, Some(download))
            .await?;
        self.cache.insert(key, score);
        Ok(self.answer(score, &model, started))
    }

    fn key(digest: [u8; 32], model: &LoadedModel) -> CacheKey {
        (digest, Arc::from(model.sha256.as_str()))
    }

    /// The cached score, counting the hit or the miss.
    fn cached(&self, key: &CacheKey) -> Option<f32> {
        let score = self.cache.get(key);
        match score {
            Some(_) => self.metrics.cache_hits.inc(),
            None => self.metrics.cache_misses.inc(),
        }
        score
    }

    /// The labelled answer for `score`, counted in the predictions metric.
    fn answer(&self, score: f32, model: &LoadedModel, started: Instant) -> Prediction {
        let threshold = self.threshold(model);
        let label = Label::of(score, threshold);
        self.metrics
            .predictions
            .with_label_values(&[label.as_str()])
            .inc();
        let m = &model.manifest;
        Prediction {
            label,
            score,
            threshold,
            model: ModelRef {
                name: m.name.clone(),
                version: m.version.clone(),
                sha256: model.sha256.clone(),
            },
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    /// Decode, preprocess and forward pass, on a worker of the pool, in the place `reservation`
    /// holds. `download`, the slot the bytes were fetched in, is freed once they are decoded.
    async fn run(
        &self,
        reservation: Reservation,
        model: Arc<LoadedModel>,
        bytes: Bytes,
        kind: ImageType,
        download: Option<OwnedSemaphorePermit>,
    ) -> Result<f32> {
        let limits = self.limits;
        let seconds = self.metrics.seconds.clone();
        let job = move || -> Result<f32> {
            // RGB as PIL's `convert("RGB")`, which the model was trained on.
            let image = imaging::decode(Cursor::new(&bytes), kind, &limits)?.into_rgb8();
            drop(bytes);
            drop(download);
            let input = model.preprocessor().tensor_data(&image);
            drop(image);
            let timer = seconds.start_timer();
            let score = model.forward(input)?;
            timer.observe_duration();
            Ok(score)
        };
        match self.pool.run(reservation, job).await {
            Ok(result) => result,
            Err(PoolError::Busy) => Err(Error::Busy),
            Err(e @ PoolError::Failed(_)) => Err(Error::Unexpected(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_below_the_threshold_is_forgettable() {
        assert_eq!(Label::of(0.749, 0.75), Label::Forgettable);
    }

    #[test]
    fn the_predictor_is_not_ready_until_a_model_is_installed() {
        let settings = crate::config::Settings {
            server: common::config::ServerSettings::from_env("127.0.0.1:0", "inference")
                .expect("server settings"),
            model_dir: "model".into(),
            images_url: "http://127.0.0.1:8201".into(),
            threshold: None,
            pool: crate::config::PoolSettings::default(),
            engine: crate::config::EngineSettings::default(),
            limits: ImageLimits::default(),
            cache_entries: 1,
        };
        let metrics =
            common::metrics::Metrics::new("inference", "inference", common::metrics::SLOW_BUCKETS)
                .expect("metrics");
        let predictor = Predictor::new(
            &settings,
            InferenceMetrics::register(&metrics).expect("register"),
        );
        assert_eq!(
            predictor.readiness(),
            Err("the model is loading".to_owned())
        );
        assert!(matches!(predictor.model(), Err(Error::ModelNotReady)));
        predictor.set_state(ModelState::Failed("broken".into()));
        assert!(predictor
            .readiness()
            .expect_err("failed")
            .contains("broken"));
    }

    #[test]
    fn a_score_at_the_threshold_is_memorable() {
        assert_eq!(Label::of(0.75, 0.75), Label::Memorable);
    }
}
