//! Password hashing with argon2id, off the async workers and behind a bound.
//!
//! A hash costs ~19 MiB and tens of milliseconds of CPU, so hashes run on the blocking pool, at
//! most `ARGON2_MAX_CONCURRENT` at once, with at most `ARGON2_MAX_QUEUE` more waiting; beyond that
//! a caller is told at once that the service is busy ([`HashError::Busy`]) instead of queueing
//! without bound. Each running hash works in one of at most `ARGON2_MAX_CONCURRENT` memory
//! buffers, allocated once and reused: left to the allocator, every blocking-pool thread kept its
//! own freed 19 MiB in a malloc arena, and a burst of registrations left the process hundreds of
//! MiB larger for good. Login against an unknown user verifies against a dummy hash so that it
//! takes as long as a wrong password.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use anyhow::Context;
use argon2::{
    password_hash::{Output, ParamsString, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use prometheus::{Histogram, IntGauge};
use rand::RngCore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{config::Argon2Settings, domain::Password};

/// Why a hash did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is busy and the queue is full: try again shortly.
    #[error("argon2 queue full")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The hash metrics: time per hash and callers waiting for a slot.
pub struct HashMetrics {
    pub seconds: Histogram,
    pub queued: IntGauge,
}

/// Hashes and verifies passwords.
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    max_queue: usize,
    waiting: AtomicUsize,
    /// Free hash buffers; never more than `ARGON2_MAX_CONCURRENT` exist.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    dummy_hash: String,
    metrics: HashMetrics,
}

/// Counts a caller in the queue until dropped (a cancelled request leaves it too).
struct Waiting<'a>(&'a Passwords);

impl<'a> Waiting<'a> {
    /// Joins the queue, or `None` when it is full.
    fn join(passwords: &'a Passwords) -> Option<Self> {
        let joined = passwords
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < passwords.max_queue).then_some(n + 1)
            })
            .is_ok();
        joined.then(|| {
            passwords.metrics.queued.inc();
            Self(passwords)
        })
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.queued.dec();
    }
}

impl Passwords {
    /// Builds the hasher and computes the dummy hash used for unknown users.
    pub fn new(settings: Argon2Settings, metrics: HashMetrics) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let mut random = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let mut blocks = vec![Block::default(); params.block_count()];
        let dummy_hash = hash_with(&params, hex::encode(random).as_bytes(), &mut blocks)?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(settings.max_concurrent)),
            max_queue: settings.max_queue,
            waiting: AtomicUsize::new(0),
            buffers: Arc::new(Mutex::new(vec![blocks])),
            dummy_hash,
            metrics,
        })
    }

    /// The permits bounding concurrent hashes (tests hold them to keep a request in flight).
    pub fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = Waiting::join(self).ok_or(HashError::Busy)?;
        Ok(self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("argon2 permits closed")?)
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&Params, &mut [Block]) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.permit().await?;
        let (params, buffers) = (self.params.clone(), self.buffers.clone());
        let span = tracing::Span::current();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            // The permit lives as long as the work, even when the caller gave up waiting: so a
            // buffer is in use only under a permit and no more buffers than permits ever exist.
            let _permit = permit;
            let free = buffers.lock().map(|mut free| free.pop()).ok().flatten();
            let mut blocks = free.unwrap_or_else(|| vec![Block::default(); params.block_count()]);
            let result = span.in_scope(|| work(&params, &mut blocks));
            if let Ok(mut free) = buffers.lock() {
                free.push(blocks);
            }
            result
        })
        .await
        .context("argon2 task failed")?;
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(result?)
    }

    /// A PHC-format argon2id hash of the password.
    #[tracing::instrument(skip_all)]
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        self.run_blocking(move |params, blocks| {
            hash_with(params, password.expose().as_bytes(), blocks)
        })
        .await
    }

    /// Whether `password` matches `stored` (in constant time). With `stored = None` (unknown
    /// user) it checks against the dummy hash, costing the same, and answers `false`.
    #[tracing::instrument(skip_all)]
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let matches = self
            .run_blocking(move |_, blocks| {
                verify_with(&stored, password.expose().as_bytes(), blocks)
            })
            .await?;
        Ok(known && matches)
    }
}

/// Hashes `password` with a fresh salt in `blocks`, as argon2's own `hash_password` would.
fn hash_with(params: &Params, password: &[u8], blocks: &mut [Block]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, blocks)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the PHC string `stored`, computed in `blocks` when they are large
/// enough for the stored parameters (a hash made with more memory gets its own buffer).
fn verify_with(stored: &str, password: &[u8], blocks: &mut [Block]) -> anyhow::Result<bool> {
    let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| bad(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| bad(&e))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| bad(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| bad(&e))?;
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return Err(anyhow::anyhow!("stored hash: no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(|e| bad(&e))?;
    let mut out = vec![0u8; expected.len()];
    let mut own;
    let blocks = if blocks.len() >= params.block_count() {
        blocks
    } else {
        own = vec![Block::default(); params.block_count()];
        &mut own[..]
    };
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, blocks)
        .map_err(|e| anyhow::anyhow!("verifying: {e}"))?;
    let computed = Output::new(&out).map_err(|e| bad(&e))?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    fn passwords_with(max_concurrent: usize, max_queue: usize) -> Passwords {
        let seconds =
            Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).expect("histogram");
        let queued = IntGauge::new("q", "q").expect("gauge");
        Passwords::new(
            Argon2Settings {
                max_concurrent,
                max_queue,
                ..Argon2Settings::default()
            },
            HashMetrics { seconds, queued },
        )
        .expect("hasher")
    }

    fn passwords() -> Passwords {
        passwords_with(2, 8)
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).expect("valid password")
    }

    async fn verifies(passwords: &Passwords, raw: &str, hash: &str) -> bool {
        passwords
            .verify(&password(raw), Some(hash))
            .await
            .expect("verify")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let passwords = passwords();
        let hash = passwords
            .hash(&password("correct horse"))
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verifies(&passwords, "correct horse", &hash).await);
        assert!(!verifies(&passwords, "wrong horse", &hash).await);
    }

    #[tokio::test]
    async fn hashes_are_interchangeable_with_argon2s_own_hasher() {
        let passwords = passwords();
        let ours = passwords
            .hash(&password("correct horse"))
            .await
            .expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());

        // Stored before buffers were reused, and with more memory than configured.
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let params = Params::new(32 * 1024, 2, 1, None).expect("params");
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old password", &salt)
            .expect("hash")
            .to_string();
        assert!(verifies(&passwords, "old password", &theirs).await);
        assert!(!verifies(&passwords, "old passworD", &theirs).await);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = passwords();
        assert!(!passwords
            .verify(&password("anything at all"), None)
            .await
            .expect("verify"));
    }

    #[tokio::test]
    async fn every_hash_is_timed() {
        let passwords = passwords();
        passwords.hash(&password("12345678")).await.expect("hash");
        assert_eq!(passwords.metrics.seconds.get_sample_count(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let passwords = Arc::new(passwords_with(1, 1));
        let held = passwords
            .permits()
            .acquire_owned()
            .await
            .expect("the only permit");
        let queued = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash(&password("first in line")).await }
        });
        let gauge = passwords.metrics.queued.clone();
        testkit::eventually("one hash waits", Duration::from_secs(10), || {
            let gauge = gauge.clone();
            async move { gauge.get() == 1 }
        })
        .await;

        let started = Instant::now();
        let refused = passwords.hash(&password("second in line")).await;
        assert!(matches!(refused, Err(HashError::Busy)), "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(1));

        drop(held);
        assert!(queued.await.expect("task").is_ok());
        assert_eq!(passwords.metrics.queued.get(), 0);
    }

    #[tokio::test]
    async fn no_more_buffers_than_concurrent_hashes_ever_exist() {
        let passwords = Arc::new(passwords_with(2, 64));
        let hashes = (0..12).map(|n| {
            let passwords = passwords.clone();
            tokio::spawn(async move { passwords.hash(&password(&format!("password {n}"))).await })
        });
        for hash in futures::future::join_all(hashes).await {
            assert!(hash.expect("task").is_ok());
        }
        let buffers = passwords.buffers.lock().expect("lock").len();
        assert!((1..=2).contains(&buffers), "{buffers} buffers");
    }
}
