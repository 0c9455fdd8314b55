//! Minting tokens: EdDSA access tokens (only users_service holds the private key) and opaque
//! refresh tokens (only their SHA-256 is stored).

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::auth::{Claims, Jwk, JwkSet, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::keys::SigningKey;

/// Signs access tokens with the service's Ed25519 key.
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
    jwks: JwkSet,
    public_key: Vec<u8>,
    issuer: String,
    audience: String,
    ttl: Duration,
}

/// See [`TokenSigner::revocation_lifetime`].
const REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// A freshly signed access token.
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

impl TokenSigner {
    pub fn new(key: &SigningKey, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.key_id());
        Self {
            key: EncodingKey::from_ed_der(&key.pkcs8),
            header,
            jwks: JwkSet {
                keys: vec![Jwk::ed25519(&key.public_key)],
            },
            public_key: key.public_key.clone(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    /// The public key set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The raw public key (users_service verifies its own tokens with it).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// How long a revocation must be kept: the lifetime of an access token, plus a margin for
    /// a token signed just after its session was revoked (a rotation racing a logout) and for
    /// the verifiers' clock leeway.
    pub fn revocation_lifetime(&self) -> Duration {
        self.ttl + REVOCATION_MARGIN
    }

    /// Signs an access token for this user, in the session (refresh-token family) `session`.
    pub fn issue(
        &self,
        user_id: Uuid,
        name: &str,
        role: Role,
        session: &str,
    ) -> anyhow::Result<AccessToken> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: user_id,
            name: name.to_owned(),
            role,
            iat: now,
            exp: now.saturating_add(ttl),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
            sid: Some(session.to_owned()),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }
}

/// A new refresh token: 32 random bytes, base64url without padding.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores instead of the refresh token: its SHA-256, hex.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{
        auth::{AuthError, Revocation, TokenVerifier},
        timestamp::Timestamp,
    };

    #[tokio::test]
    async fn a_signed_token_verifies_with_the_shared_verifier() {
        let key = SigningKey::generate().expect("key");
        let signer = TokenSigner::new(&key, "iss", "aud", Duration::from_secs(60));
        let id = Uuid::now_v7();
        let token = signer
            .issue(id, "alice", Role::Admin, "s1")
            .expect("signed");
        assert_eq!(token.expires_in, 60);
        let verifier =
            TokenVerifier::from_public_keys(std::slice::from_ref(&key.public_key), "iss", "aud");
        let claims = verifier.verify(&token.token).await.expect("valid");
        assert_eq!(
            (claims.sub, claims.name.as_str(), claims.role),
            (id, "alice", Role::Admin)
        );
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[tokio::test]
    async fn a_remembered_token_does_not_vouch_for_a_tampered_copy() {
        let key = SigningKey::generate().expect("key");
        let signer = TokenSigner::new(&key, "iss", "aud", Duration::from_secs(60));
        let token = signer
            .issue(Uuid::now_v7(), "carol", Role::User, "s2")
            .expect("signed")
            .token;
        let verifier =
            TokenVerifier::from_public_keys(std::slice::from_ref(&key.public_key), "iss", "aud");
        let first = verifier.verify(&token).await.expect("valid");
        let again = verifier.verify(&token).await.expect("still valid");
        assert_eq!((first.jti, first.exp), (again.jti, again.exp));

        // The same header and signature around claims that say admin.
        let [header, _, signature]: [&str; 3] = token
            .split('.')
            .collect::<Vec<_>>()
            .try_into()
            .expect("three parts");
        let mut forged = first.clone();
        forged.role = Role::Admin;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let tampered = format!("{header}.{payload}.{signature}");
        assert!(verifier.verify(&tampered).await.is_err());
    }

    #[tokio::test]
    async fn a_token_for_another_audience_is_refused() {
        let key = SigningKey::generate().expect("key");
        let signer = TokenSigner::new(&key, "iss", "other", Duration::from_secs(60));
        let token = signer
            .issue(Uuid::now_v7(), "bob", Role::User, "s3")
            .expect("signed");
        let verifier =
            TokenVerifier::from_public_keys(std::slice::from_ref(&key.public_key), "iss", "aud");
        assert!(verifier.verify(&token.token).await.is_err());
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_its_session_is_revoked() {
        let key = SigningKey::generate().expect("key");
        let signer = TokenSigner::new(&key, "iss", "aud", Duration::from_secs(60));
        let (user, now) = (Uuid::now_v7(), Timestamp::now());
        let token = signer
            .issue(user, "dave", Role::User, "session-1")
            .expect("signed")
            .token;
        let other = signer
            .issue(user, "dave", Role::User, "session-2")
            .expect("signed")
            .token;
        let verifier =
            TokenVerifier::from_public_keys(std::slice::from_ref(&key.public_key), "iss", "aud");
        assert_eq!(
            verifier.verify(&token).await.expect("valid").sid.as_deref(),
            Some("session-1")
        );
        verifier.revocations().apply(&[Revocation {
            sub: user,
            sid: Some("session-1".into()),
            revoked_at: now.as_micros(),
            expires_at: now.saturating_add(signer.revocation_lifetime()).as_micros(),
        }]);
        assert!(matches!(
            verifier.verify(&token).await,
            Err(AuthError::Revoked)
        ));
        assert!(verifier.verify(&other).await.is_ok());
    }

    #[test]
    fn refresh_tokens_are_random_43_character_strings() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(URL_SAFE_NO_PAD
            .decode(&a)
            .is_ok_and(|bytes| bytes.len() == 32));
    }

    #[test]
    fn the_stored_hash_is_the_hex_sha256_of_the_token() {
        assert_eq!(
            hash_refresh_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
