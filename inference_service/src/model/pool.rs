//! The bounded inference pool: `INFERENCE_WORKERS` model runs at once on the blocking pool (each
//! with the `INFERENCE_THREADS` threads its engine lane has), and at most `INFERENCE_QUEUE`
//! requests waiting for a worker.
//! A request reserves its place first ([`InferencePool::reserve`]), before it fetches or decodes
//! anything; one that finds the queue full is refused at once (503 + `Retry-After`) rather than
//! piling up behind seconds of work.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::InferenceMetrics;

/// Why a job did not run to completion.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("every worker is busy and the queue is full")]
    Busy,
    #[error("an inference job panicked or was cancelled: {0}")]
    Failed(#[from] tokio::task::JoinError),
}

/// Runs CPU-heavy jobs with bounded parallelism and a bounded queue.
pub struct InferencePool {
    workers: Arc<Semaphore>,
    /// Places for requests running or waiting: workers plus queue.
    places: Arc<Semaphore>,
    metrics: InferenceMetrics,
}

/// A place in the pool, held from before a request fetches its image until its job ends. It
/// counts as waiting (`inference_queue_depth`) until the job gets a worker.
pub struct Reservation {
    place: OwnedSemaphorePermit,
    waiting: Waiting,
}

/// Decrements the queue gauge however the wait ends (served or the client went away).
struct Waiting(InferenceMetrics);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.queue_depth.dec();
    }
}

/// One worker held busy, with its place in the pool, until dropped.
pub struct Occupied {
    _place: OwnedSemaphorePermit,
    _worker: OwnedSemaphorePermit,
}

impl InferencePool {
    /// `workers` jobs at once, `queue` jobs waiting.
    pub fn new(workers: usize, queue: usize, metrics: InferenceMetrics) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            places: Arc::new(Semaphore::new(workers.saturating_add(queue))),
            metrics,
        }
    }

    /// A place for one job, or [`PoolError::Busy`] at once when every worker is busy and the
    /// queue is full. Taken before the job's input is fetched, so a full pool costs no download.
    pub fn reserve(&self) -> Result<Reservation, PoolError> {
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Busy)?;
        self.metrics.queue_depth.inc();
        Ok(Reservation {
            place,
            waiting: Waiting(self.metrics.clone()),
        })
    }

    /// Runs `job` on the blocking pool in the place `reservation` holds, once a worker is free.
    pub async fn run<R, F>(&self, reservation: Reservation, job: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let Reservation { place, waiting } = reservation;
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Busy)?;
        drop(waiting);
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            let _place = place;
            let _permit = permit;
            let _entered = span.enter();
            job()
        });
        Ok(handle.await?)
    }

    /// Occupies one worker and its place until the guard is dropped: maintenance, and tests that
    /// need a full queue without racing real work.
    pub async fn occupy_worker(&self) -> Occupied {
        let closed = "the pool's semaphores are never closed";
        let place = self.places.clone().acquire_owned().await.expect(closed);
        let worker = self.workers.clone().acquire_owned().await.expect(closed);
        Occupied {
            _place: place,
            _worker: worker,
        }
    }

    /// Requests waiting for a worker now.
    pub fn waiting(&self) -> i64 {
        self.metrics.queue_depth.get()
    }
}
