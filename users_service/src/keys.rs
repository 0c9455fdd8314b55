//! The Ed25519 signing key: loading it, and generating it exactly once even when several
//! replicas start at the same moment.
//!
//! Generation writes the key to a private temporary file and then hard-links it to the final
//! name. Linking fails when the name exists, so the first replica wins and every other one
//! discards its own key and reads the winner's: all replicas sign with ONE key. Whoever generates
//! the key also writes the public key beside it as `<file>.pub` (SubjectPublicKeyInfo PEM) for
//! services that verify from a file.
//!
//! Loading an existing key only reads: the key may be a mounted secret in a folder the service
//! cannot write to (a Compose or Swarm secret under `/run/secrets`, owned by root).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use base64::{engine::general_purpose::STANDARD, Engine};
use common::auth::{ed25519_public_key_pem, pem};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// A loaded signing key.
pub struct SigningKey {
    /// PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    /// The raw 32-byte public key.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &common::auth::key_id(&self.public_key))
            .finish_non_exhaustive()
    }
}

fn pem_body(text: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .with_context(|| format!("no `{begin}` line"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .with_context(|| format!("no `{end}` line"))?
        + start;
    let body: String = text[start..stop].split_whitespace().collect();
    STANDARD.decode(body).context("the PEM body is not base64")
}

impl SigningKey {
    /// Parses a PKCS#8 `PRIVATE KEY` PEM holding an Ed25519 key (v1 as written by OpenSSL, or v2).
    pub fn from_pem(text: &str) -> anyhow::Result<Self> {
        let pkcs8 = pem_body(text, "PRIVATE KEY")?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 private key: {e}"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        Ok(Self { pkcs8, public_key })
    }

    /// A fresh random key.
    pub fn generate() -> anyhow::Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| anyhow::anyhow!("generating a key: {e}"))?;
        let pkcs8 = document.as_ref().to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| anyhow::anyhow!("reading the new key: {e}"))?;
        Ok(Self {
            public_key: pair.public_key().as_ref().to_vec(),
            pkcs8,
        })
    }

    pub fn private_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as SubjectPublicKeyInfo PEM (what `JWT_PUBLIC_KEY_FILE` expects).
    pub fn public_pem(&self) -> String {
        ed25519_public_key_pem(&self.public_key)
    }

    pub fn key_id(&self) -> String {
        common::auth::key_id(&self.public_key)
    }
}

/// `<file>.pub`
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    PathBuf::from(name)
}

/// Writes `contents` to a new temporary file beside `path` (owner-only permissions), synced.
fn write_temp(path: &Path, contents: &str) -> anyhow::Result<PathBuf> {
    let temp = temp_path(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(temp)
}

/// Writes the public key file, replacing it atomically (readers never see half a file).
fn write_public_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let public = public_key_path(path);
    if std::fs::read_to_string(&public).is_ok_and(|text| text == key.public_pem()) {
        return Ok(());
    }
    let temp = write_temp(&public, &key.public_pem())?;
    #[cfg(unix)]
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&temp, &public).with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

/// Writes a new key to `path`, refusing to replace an existing one; returns the key now at
/// `path`, which is someone else's when another process won the race.
pub fn create_key_file(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = SigningKey::generate()?;
    let temp = write_temp(path, &key.private_pem())?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    let created = match linked {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    let key = read_key_file(path)?;
    write_public_key(path, &key)?;
    Ok((key, created))
}

fn read_key_file(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pem(&text).with_context(|| format!("{}", path.display()))
}

/// Loads the signing key, generating it first when it is missing and `generate` allows it.
pub fn load_or_generate(path: &Path, generate: bool) -> anyhow::Result<SigningKey> {
    match std::fs::metadata(path) {
        Ok(_) => read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !generate {
                bail!(
                    "{} does not exist and JWT_GENERATE_KEY is false",
                    path.display()
                );
            }
            let (key, created) = create_key_file(path)?;
            if created {
                tracing::info!(path = %path.display(), kid = key.key_id(), "generated a new signing key");
            }
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_survives_a_round_trip_through_pem() {
        let key = SigningKey::generate().expect("key");
        let again = SigningKey::from_pem(&key.private_pem()).expect("parsed");
        assert_eq!(again.public_key, key.public_key);
        let public = common::auth::ed25519_public_key_from_pem(&key.public_pem()).expect("spki");
        assert_eq!(public, key.public_key);
    }

    #[test]
    fn replicas_generating_at_once_end_up_with_one_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/jwt.pem");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    load_or_generate(&path, true).map(|k| k.public_key)
                })
            })
            .collect();
        let keys: Vec<Vec<u8>> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("key"))
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "replicas disagree on the key"
        );
        let public = std::fs::read_to_string(public_key_path(&path)).expect("pub file");
        assert_eq!(
            common::auth::ed25519_public_key_from_pem(&public).expect("spki"),
            keys[0]
        );
        let leftovers = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .count();
        assert_eq!(leftovers, 2, "only the key and its .pub remain");
    }

    #[test]
    fn loading_an_existing_key_writes_nothing_beside_it() {
        // A mounted secret lives in a folder the service cannot write to: loading must only read.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwt_signing_key");
        std::fs::write(&path, SigningKey::generate().expect("key").private_pem()).expect("write");
        load_or_generate(&path, false).expect("loaded");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["jwt_signing_key"]);
    }

    #[test]
    fn a_missing_key_is_an_error_when_generation_is_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_or_generate(&dir.path().join("absent.pem"), false).expect_err("missing");
        assert!(err.to_string().contains("JWT_GENERATE_KEY"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused() {
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(SigningKey::from_pem("hello").is_err());
    }
}
