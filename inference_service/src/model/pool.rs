//! The bounded inference pool: `INFERENCE_WORKERS` model runs at once on the blocking pool, each
//! with `INFERENCE_THREADS` threads, and at most `INFERENCE_QUEUE` requests waiting for a worker.
//! A request that finds the queue full is refused at once (503 + `Retry-After`) rather than
//! piling up behind seconds of work.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

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
    waiting: Arc<Semaphore>,
    /// One tract executor per worker; a running job borrows one.
    executors: Arc<Mutex<Vec<Executor>>>,
    metrics: InferenceMetrics,
}

/// Decrements the queue gauge however the wait ends (served or the client went away).
struct Waiting<'a>(&'a InferenceMetrics);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.queue_depth.dec();
    }
}

impl InferencePool {
    /// `workers` jobs at once, `threads` threads each, `queue` jobs waiting.
    pub fn new(workers: usize, threads: usize, queue: usize, metrics: InferenceMetrics) -> Self {
        let executors = (0..workers)
            .map(|i| {
                if threads > 1 {
                    Executor::multithread_with_name(threads, &format!("inference-{i}"))
                } else {
                    Executor::SingleThread
                }
            })
            .collect();
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(Semaphore::new(queue)),
            executors: Arc::new(Mutex::new(executors)),
            metrics,
        }
    }

    /// Runs `job` on the blocking pool once a worker is free, or fails with [`PoolError::Busy`] at
    /// once when all workers are busy and the queue is full.
    pub async fn run<R, F>(&self, job: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = match self.workers.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let slot = self
                    .waiting
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| PoolError::Busy)?;
                self.metrics.queue_depth.inc();
                let _waiting = Waiting(&self.metrics);
                let permit = self
                    .workers
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| PoolError::Busy)?;
                drop(slot);
                permit
            }
        };
        let executor = Borrowed::take(&self.executors);
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            // Locals drop in reverse: the executor goes home before the worker permit is freed.
            let _permit = permit;
            let executor = executor;
            let _entered = span.enter();
            multithread_tract_scope(executor.executor.clone(), job)
        });
        Ok(handle.await?)
    }

    /// Occupies one worker until the permit is dropped: maintenance, and tests that need a full
    /// queue without racing real work.
    pub async fn occupy_worker(&self) -> OwnedSemaphorePermit {
        self.workers
            .clone()
            .acquire_owned()
            .await
            .expect("the worker semaphore is never closed")
    }

    /// Requests waiting for a worker now.
    pub fn waiting(&self) -> i64 {
        self.metrics.queue_depth.get()
    }
}

/// An executor borrowed for one job, given back when the job ends however it ends.
struct Borrowed {
    executor: Executor,
    home: Arc<Mutex<Vec<Executor>>>,
}

impl Borrowed {
    fn take(home: &Arc<Mutex<Vec<Executor>>>) -> Self {
        // A worker permit guarantees a free executor; single-threaded is the safe fallback.
        let executor = home
            .lock()
            .map(|mut e| e.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        Self {
            executor,
            home: home.clone(),
        }
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Ok(mut executors) = self.home.lock() {
            executors.push(std::mem::take(&mut self.executor));
        }
    }
}
