//! Password hashing with argon2id, off the async workers and behind a bound.
//!
//! A hash costs ~19 MiB and tens of milliseconds of CPU, so hashes run on the blocking pool and
//! at most `ARGON2_MAX_CONCURRENT` at once; the rest wait for a permit. Login against an unknown
//! user verifies against a dummy hash so that it takes as long as a wrong password.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use argon2::{
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
    Algorithm, Argon2, Params, Version,
};
use prometheus::Histogram;
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::{config::Argon2Settings, domain::Password};

/// Hashes and verifies passwords.
pub struct Passwords {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    dummy_hash: String,
    seconds: Histogram,
}

impl Passwords {
    /// Builds the hasher and computes the dummy hash used for unknown users.
    pub fn new(settings: Argon2Settings, seconds: Histogram) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let dummy_hash = hash_with(&argon2, &hex::encode(random))?;
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(settings.max_concurrent)),
            dummy_hash,
            seconds,
        })
    }

    /// The permits bounding concurrent hashes (tests hold them to keep a request in flight).
    pub fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    async fn run_blocking<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(&Argon2<'static>) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("argon2 permits closed")?;
        let argon2 = self.argon2.clone();
        let span = tracing::Span::current();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| work(&argon2)))
            .await
            .context("argon2 task failed")?;
        self.seconds.observe(started.elapsed().as_secs_f64());
        result
    }

    /// A PHC-format argon2id hash of the password.
    #[tracing::instrument(skip_all)]
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let password = password.clone();
        self.run_blocking(move |argon2| hash_with(argon2, password.expose()))
            .await
    }

    /// Whether `password` matches `stored` (in constant time). With `stored = None` (unknown
    /// user) it checks against the dummy hash, costing the same, and answers `false`.
    #[tracing::instrument(skip_all)]
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let matches = self
            .run_blocking(move |argon2| {
                let parsed =
                    PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
                Ok(argon2
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon2
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> Passwords {
        let histogram =
            Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).expect("histogram");
        Passwords::new(
            Argon2Settings {
                max_concurrent: 2,
                ..Argon2Settings::default()
            },
            histogram,
        )
        .expect("hasher")
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw).expect("valid password")
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
        assert!(passwords
            .verify(&password("correct horse"), Some(&hash))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify(&password("wrong horse"), Some(&hash))
            .await
            .expect("verify"));
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
        assert_eq!(passwords.seconds.get_sample_count(), 1);
    }
}
