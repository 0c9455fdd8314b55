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
use moka::{sync::Cache, Expiry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::Problem;

mod revocations;
pub use revocations::{Revocation, RevocationFeed, RevocationList, RevocationSource};

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
    /// The session (refresh-token family) the token was issued in; logout and refresh-token
    /// reuse revoke exactly the tokens of one session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
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
    #[error("The access token has been revoked; log in again.")]
    Revoked,
    #[error("Token revocations could not be checked lately; try again shortly.")]
    RevocationsUnavailable,
}

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable | AuthError::RevocationsUnavailable => {
                Problem::overloaded(err.to_string())
            }
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
    /// Tokens already verified, by the SHA-256 of their text: a client sends the same token with
    /// every request, and a lookup costs a fraction of an Ed25519 signature check.
    verified: Cache<[u8; 32], Arc<Claims>>,
    /// Checked on every verification, remembered tokens included.
    revocations: Arc<RevocationList>,
}

/// Verified tokens remembered at most (a few MiB).
const VERIFIED_TOKENS_MAX: u64 = 10_000;
/// How long a verified token is remembered at most; never past its `exp`.
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(30);

/// Forgets a verified token at its `exp`, or after [`VERIFIED_TOKEN_TTL`] if that comes first.
struct UntilExpiry;

impl Expiry<[u8; 32], Arc<Claims>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &[u8; 32],
        claims: &Arc<Claims>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = u64::try_from(claims.exp - unix_now()).unwrap_or(0);
        Some(Duration::from_secs(left).min(VERIFIED_TOKEN_TTL))
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn verified_tokens() -> Cache<[u8; 32], Arc<Claims>> {
    Cache::builder()
        .max_capacity(VERIFIED_TOKENS_MAX)
        .expire_after(UntilExpiry)
        .build()
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
            verified: verified_tokens(),
            revocations: Arc::new(RevocationList::unfed()),
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
            verified: verified_tokens(),
            revocations: Arc::new(RevocationList::unfed()),
        }
    }

    /// Builds the verifier services configure with `JWKS_URL` (comma-separated) or
    /// `JWT_PUBLIC_KEY_FILE`, plus `JWT_ISSUER` / `JWT_AUDIENCE`, and its revocation feed
    /// (`REVOCATIONS_URL`, `REVOCATION_POLL_INTERVAL_MS`, `REVOCATION_MAX_STALENESS_SECS`).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::{var, var_or, ConfigError};
        let issuer: String = var_or("JWT_ISSUER", DEFAULT_ISSUER.to_owned())?;
        let audience: String = var_or("JWT_AUDIENCE", DEFAULT_AUDIENCE.to_owned())?;
        let verifier = if let Some(path) = var::<String>("JWT_PUBLIC_KEY_FILE")? {
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}"))
            })?;
            let key = ed25519_public_key_from_pem(&pem)
                .map_err(|e| ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("{path}: {e}")))?;
            Self::from_public_keys(&[key], &issuer, &audience)
        } else {
            let urls = url_list(&var_or(
                "JWKS_URL",
                "http://127.0.0.1:8101/.well-known/jwks.json".to_owned(),
            )?);
            if urls.is_empty() {
                return Err(ConfigError::new(
                    "JWKS_URL",
                    "set at least one URL or JWT_PUBLIC_KEY_FILE",
                ));
            }
            Self::from_jwks_urls(urls, &issuer, &audience)
        };
        Ok(match revocation_source_from_env()? {
            Some(source) => verifier.with_revocations(Arc::new(RevocationList::fed_from(source))),
            None => verifier,
        })
    }

    /// This verifier, checking tokens against `revocations`.
    pub fn with_revocations(mut self, revocations: Arc<RevocationList>) -> Self {
        self.revocations = revocations;
        self
    }

    /// The revocations every token is checked against.
    pub fn revocations(&self) -> &Arc<RevocationList> {
        &self.revocations
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
                    // A key that left the set must not keep its tokens valid.
                    self.verified.invalidate_all();
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

    /// Verifies a compact JWT and returns its claims. A token verified before is answered from
    /// memory until its `exp` (at most [`VERIFIED_TOKEN_TTL`] after it was verified).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            if claims.exp > unix_now() {
                self.revocations.check(&claims)?;
                return Ok(Claims::clone(&claims));
            }
        }
        let claims = self.verify_signature(token).await?;
        self.revocations.check(&claims)?;
        self.verified.insert(digest, Arc::new(claims.clone()));
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<Claims, AuthError> {
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

/// The non-empty entries of a comma-separated list of URLs.
fn url_list(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

const JWKS_PATH: &str = "/.well-known/jwks.json";
const REVOCATIONS_PATH: &str = "/internal/revocations";
/// Default time between two polls of the revocation feed.
pub const DEFAULT_REVOCATION_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default time without a successful poll after which every token is refused.
pub const DEFAULT_REVOCATION_MAX_STALENESS: Duration = Duration::from_secs(5);
/// The longest staleness accepted: beyond it a revoked token could work for minutes.
const MAX_REVOCATION_STALENESS: Duration = Duration::from_secs(60);

/// The revocation feed from `REVOCATIONS_URL` (default: every `JWKS_URL` with its path replaced by
/// `/internal/revocations`), `REVOCATION_POLL_INTERVAL_MS` and `REVOCATION_MAX_STALENESS_SECS`.
/// `REVOCATIONS_URL=none` turns revocation checks off (a service on its own, tests); with a
/// public-key file and no users_service URL to derive from, the variable must be set.
fn revocation_source_from_env() -> Result<Option<RevocationSource>, crate::config::ConfigError> {
    use crate::config::{var, var_or, ConfigError};
    let urls = match var::<String>("REVOCATIONS_URL")? {
        Some(urls) if urls.eq_ignore_ascii_case("none") => {
            tracing::warn!(
                "REVOCATIONS_URL=none: revoked access tokens stay valid until they expire"
            );
            return Ok(None);
        }
        Some(urls) => url_list(&urls),
        None if var::<String>("JWT_PUBLIC_KEY_FILE")?.is_some() => {
            return Err(ConfigError::new(
                "REVOCATIONS_URL",
                "set it to users_service's /internal/revocations URLs (or `none`) when \
                 JWT_PUBLIC_KEY_FILE is used",
            ))
        }
        None => {
            let jwks = url_list(&var_or(
                "JWKS_URL",
                format!("http://127.0.0.1:8101{JWKS_PATH}"),
            )?);
            jwks.iter()
                .map(|url| {
                    url.strip_suffix(JWKS_PATH)
                        .map(|base| format!("{base}{REVOCATIONS_PATH}"))
                        .ok_or_else(|| {
                            ConfigError::new(
                                "REVOCATIONS_URL",
                                format!("cannot derive it from JWKS_URL entry {url}: set it"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    if urls.is_empty() {
        return Err(ConfigError::new(
            "REVOCATIONS_URL",
            "set at least one URL, or `none`",
        ));
    }
    let poll_interval = Duration::from_millis(var_or(
        "REVOCATION_POLL_INTERVAL_MS",
        u64::try_from(DEFAULT_REVOCATION_POLL_INTERVAL.as_millis()).unwrap_or(1_000),
    )?);
    let max_staleness = Duration::from_secs(var_or(
        "REVOCATION_MAX_STALENESS_SECS",
        DEFAULT_REVOCATION_MAX_STALENESS.as_secs(),
    )?);
    if poll_interval < Duration::from_millis(50) {
        return Err(ConfigError::new(
            "REVOCATION_POLL_INTERVAL_MS",
            "must be at least 50",
        ));
    }
    if max_staleness > MAX_REVOCATION_STALENESS {
        return Err(ConfigError::new(
            "REVOCATION_MAX_STALENESS_SECS",
            format!(
                "at most {} (a longer bound lets revoked tokens work that long)",
                MAX_REVOCATION_STALENESS.as_secs()
            ),
        ));
    }
    if max_staleness < poll_interval * 2 {
        return Err(ConfigError::new(
            "REVOCATION_MAX_STALENESS_SECS",
            "must be at least twice REVOCATION_POLL_INTERVAL_MS, or one late poll refuses every token",
        ));
    }
    Ok(Some(RevocationSource {
        urls,
        poll_interval,
        max_staleness,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_expiring_in(seconds: i64) -> Arc<Claims> {
        let now = unix_now();
        Arc::new(Claims {
            sub: Uuid::nil(),
            name: "alice".into(),
            role: Role::User,
            iat: now,
            exp: now + seconds,
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
            jti: Uuid::nil(),
            sid: None,
        })
    }

    fn remembered_for(claims: &Arc<Claims>) -> Duration {
        UntilExpiry
            .expire_after_create(&[0; 32], claims, std::time::Instant::now())
            .expect("every entry expires")
    }

    #[test]
    fn a_verified_token_is_remembered_until_its_expiry_at_most() {
        let soon = remembered_for(&claims_expiring_in(10));
        assert!(
            soon <= Duration::from_secs(10) && soon >= Duration::from_secs(9),
            "{soon:?}"
        );
        assert_eq!(remembered_for(&claims_expiring_in(-5)), Duration::ZERO);
    }

    #[test]
    fn a_long_lived_token_is_remembered_for_the_ttl_only() {
        assert_eq!(
            remembered_for(&claims_expiring_in(3_600)),
            VERIFIED_TOKEN_TTL
        );
    }
}
