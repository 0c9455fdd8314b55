//! Access tokens: the claims users_service signs, and how every service verifies them.
//!
//! Tokens are EdDSA (Ed25519) JWTs with a `kid` header. Verifiers hold public keys only: from
//! users_service's JWKS endpoint (cached, refreshed when an unknown `kid` shows up) or from a
//! public-key file. Only `EdDSA` is accepted, so `alg: none` and HS256-with-the-public-key fail.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::Problem;

/// Default `iss` of access tokens.
pub const DEFAULT_ISSUER: &str = "forgettable-users";
/// Default `aud` of access tokens.
pub const DEFAULT_AUDIENCE: &str = "forgettable";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}` (expected `user` or `admin`)"
            )),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub name: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
}

/// One key of a JSON Web Key Set (RFC 8037, OKP / Ed25519).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub x: String,
}

impl Jwk {
    /// The JWK of a raw 32-byte Ed25519 public key.
    pub fn ed25519(public_key: &[u8]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            kid: key_id(public_key),
            x: URL_SAFE_NO_PAD.encode(public_key),
        }
    }
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The key id of a public key: the first 16 characters of its base64url SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    URL_SAFE_NO_PAD.encode(digest)[..16].to_owned()
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow it.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// `der` as PEM text under `label` (`PRIVATE KEY`, `PUBLIC KEY`), 64 base64 characters a line.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A raw 32-byte Ed25519 public key as a SubjectPublicKeyInfo `PUBLIC KEY` PEM (what
/// `JWT_PUBLIC_KEY_FILE` holds).
pub fn ed25519_public_key_pem(public_key: &[u8]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public_key);
    pem("PUBLIC KEY", &der)
}

/// The raw 32-byte key inside an Ed25519 `PUBLIC KEY` PEM (SubjectPublicKeyInfo).
pub fn ed25519_public_key_from_pem(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim())?;
    anyhow::ensure!(
        der.len() == 44 && der[..12] == SPKI_PREFIX,
        "not an Ed25519 public key in SubjectPublicKeyInfo PEM"
    );
    Ok(der[12..].to_vec())
}

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Missing bearer token: send `Authorization: Bearer <access token>`.")]
    Missing,
    #[error("The access token has expired; refresh it or log in again.")]
    Expired,
    #[error("The access token is not valid.")]
    Invalid,
    #[error("The signing keys could not be fetched; try again shortly.")]
    KeysUnavailable,
}

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable => Problem::overloaded(err.to_string()),
            _ => Problem::unauthorized(err.to_string()),
        }
    }
}

enum KeySource {
    Fixed,
    Jwks {
        urls: Vec<String>,
        client: reqwest::Client,
        last_fetch: Mutex<Option<Instant>>,
    },
}

/// Verifies access tokens against a set of Ed25519 public keys.
pub struct TokenVerifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    source: KeySource,
    validation: Validation,
}

/// An unknown `kid` triggers at most one JWKS fetch per this interval.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

impl TokenVerifier {
    fn validation(issuer: &str, audience: &str) -> Validation {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation
    }

    /// A verifier with fixed raw Ed25519 public keys (users_service's own, or a key file).
    pub fn from_public_keys(keys: &[Vec<u8>], issuer: &str, audience: &str) -> Self {
        let keys = keys
            .iter()
            .map(|k| (key_id(k), DecodingKey::from_ed_der(k)))
            .collect();
        Self {
            keys: RwLock::new(keys),
            source: KeySource::Fixed,
            validation: Self::validation(issuer, audience),
        }
    }

    /// A verifier that fetches keys from JWKS URLs (tried in order) when it meets an unknown `kid`.
    pub fn from_jwks_urls(urls: Vec<String>, issuer: &str, audience: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            keys: RwLock::new(HashMap::new()),
            source: KeySource::Jwks {
                urls,
                client,
                last_fetch: Mutex::new(None),
            },
            validation: Self::validation(issuer, audience),
        }
    }

    /// Builds the verifier services configure with `JWKS_URL` (comma-separated) or
    /// `JWT_PUBLIC_KEY_FILE`, plus `JWT_ISSUER` / `JWT_AUDIENCE`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::{var, var_or, ConfigError};
        let issuer: String = var_or("JWT_ISSUER", DEFAULT_ISSUER.to_owned())?;
        let audience: String = var_or("JWT_AUDIENCE", DEFAULT_AUDIENCE.to_owned())?;
        if let Some(path) = var::<String>("JWT_PUBLIC_KEY_FILE")? {
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}"))
            })?;
            let key = ed25519_public_key_from_pem(&pem)
                .map_err(|e| ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("{path}: {e}")))?;
            return Ok(Self::from_public_keys(&[key], &issuer, &audience));
        }
        let urls: String = var_or(
            "JWKS_URL",
            "http://127.0.0.1:8101/.well-known/jwks.json".to_owned(),
        )?;
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(ConfigError::new(
                "JWKS_URL",
                "set at least one URL or JWT_PUBLIC_KEY_FILE",
            ));
        }
        Ok(Self::from_jwks_urls(urls, &issuer, &audience))
    }

    /// Fetches the key set now (services call it at start so the first request is fast).
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let KeySource::Jwks {
            urls,
            client,
            last_fetch,
        } = &self.source
        else {
            return Ok(self.keys.read().await.len());
        };
        *last_fetch.lock().await = Some(Instant::now());
        for url in urls {
            match fetch_jwks(client, url).await {
                Ok(set) => {
                    let mut keys = HashMap::new();
                    for jwk in set
                        .keys
                        .into_iter()
                        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
                    {
                        match DecodingKey::from_ed_components(&jwk.x) {
                            Ok(key) => {
                                keys.insert(jwk.kid, key);
                            }
                            Err(e) => tracing::warn!(%url, error = %e, "skipping unusable JWK"),
                        }
                    }
                    let count = keys.len();
                    *self.keys.write().await = keys;
                    tracing::info!(%url, keys = count, "fetched signing keys");
                    return Ok(count);
                }
                Err(e) => tracing::warn!(%url, error = %e, "cannot fetch JWKS"),
            }
        }
        Err(AuthError::KeysUnavailable)
    }

    async fn key_for(&self, kid: &str) -> Result<Option<DecodingKey>, AuthError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Some(key.clone()));
        }
        let KeySource::Jwks { last_fetch, .. } = &self.source else {
            return Ok(None);
        };
        let recently = last_fetch
            .lock()
            .await
            .is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL);
        let empty = self.keys.read().await.is_empty();
        if recently && !empty {
            return Ok(None);
        }
        self.refresh().await?;
        Ok(self.keys.read().await.get(kid).cloned())
    }

    /// Verifies a compact JWT and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid);
        }
        let kid = header.kid.ok_or(AuthError::Invalid)?;
        let key = self.key_for(&kid).await?.ok_or(AuthError::Invalid)?;
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> anyhow::Result<JwkSet> {
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The authenticated caller, extracted from a verified bearer token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The token itself, to call another service on the user's behalf.
    pub token: String,
    pub claims: Claims,
}

impl AuthUser {
    /// Refuses callers that are not admins (403).
    // A `Problem` is only built on the error path, so its size costs nothing on success.
    #[allow(clippy::result_large_err)]
    pub fn require_admin(&self) -> Result<(), Problem> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User => Err(Problem::forbidden("This endpoint needs the admin role.")),
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(AuthError::Missing)?.to_owned();
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        let claims = verifier.verify(&token).await?;
        Ok(AuthUser {
            id: claims.sub,
            name: claims.name.clone(),
            role: claims.role,
            token,
            claims,
        })
    }
}
