//! An Ed25519 key pair standing in for users_service's signing key.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::STANDARD, Engine};
use common::auth::{
    ed25519_public_key_pem, key_id, pem, Claims, Jwk, JwkSet, Role, TokenVerifier,
    DEFAULT_AUDIENCE, DEFAULT_ISSUER,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use uuid::Uuid;

/// An Ed25519 key pair: what users_service signs with, in the forms the services read it.
#[derive(Clone)]
pub struct TestKeys {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl std::fmt::Debug for TestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKeys")
            .field("kid", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl TestKeys {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("generate an Ed25519 key")
            .as_ref()
            .to_vec();
        Self::from_pkcs8(pkcs8).expect("read the generated key")
    }

    /// The key in a PKCS#8 `PRIVATE KEY` PEM, such as the file users_service writes.
    pub fn from_private_pem(pem: &str) -> Result<Self, String> {
        let body: String = pem
            .lines()
            .skip_while(|line| !line.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|line| !line.starts_with("-----END PRIVATE KEY-----"))
            .collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|e| format!("the PRIVATE KEY PEM body is not base64: {e}"))?;
        Self::from_pkcs8(der)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self { pkcs8, public })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The key id users_service puts in the token header and the JWKS.
    pub fn key_id(&self) -> String {
        key_id(&self.public)
    }

    /// The private key as a PKCS#8 `PRIVATE KEY` PEM (what `JWT_SIGNING_KEY_FILE` holds).
    pub fn private_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as a SubjectPublicKeyInfo `PUBLIC KEY` PEM (what `JWT_PUBLIC_KEY_FILE` holds).
    pub fn public_pem(&self) -> String {
        ed25519_public_key_pem(&self.public)
    }

    /// The JSON Web Key Set users_service would serve for this key.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![Jwk::ed25519(&self.public)],
        }
    }

    /// A verifier that trusts this key, with the default issuer and audience.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::from_public_keys(
            std::slice::from_ref(&self.public),
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
    }

    /// `claims` signed with this key, with its key id in the header.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .expect("sign the claims")
    }

    /// An access token for `user` with role `user`, valid for `ttl_secs` from now (negative:
    /// already expired), with the default issuer and audience.
    pub fn token(&self, user: Uuid, ttl_secs: i64) -> String {
        self.sign(&user_claims(user, Role::User, ttl_secs))
    }
}

/// Claims like users_service issues for `user`, valid for `ttl_secs` from now (negative: expired
/// that long ago).
pub fn user_claims(user: Uuid, role: Role, ttl_secs: i64) -> Claims {
    let now = now_secs();
    Claims {
        sub: user,
        name: format!("user-{}", &user.simple().to_string()[..8]),
        role,
        iat: now.min(now + ttl_secs),
        exp: now + ttl_secs,
        iss: DEFAULT_ISSUER.to_owned(),
        aud: DEFAULT_AUDIENCE.to_owned(),
        jti: Uuid::new_v4(),
        sid: Some(Uuid::new_v4().to_string()),
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_verifies_with_the_keys_own_verifier_and_carries_its_user() {
        let keys = TestKeys::generate();
        let user = Uuid::new_v4();
        let claims = keys
            .verifier()
            .verify(&keys.token(user, 600))
            .await
            .expect("valid token");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.role, Role::User);
    }

    #[tokio::test]
    async fn a_token_of_another_key_or_an_expired_one_is_refused() {
        let keys = TestKeys::generate();
        let other = TestKeys::generate();
        let verifier = keys.verifier();
        assert!(verifier
            .verify(&other.token(Uuid::new_v4(), 600))
            .await
            .is_err());
        assert!(verifier
            .verify(&keys.token(Uuid::new_v4(), -600))
            .await
            .is_err());
    }

    #[test]
    fn the_public_pem_is_what_common_reads_from_a_key_file() {
        let keys = TestKeys::generate();
        let read = common::auth::ed25519_public_key_from_pem(&keys.public_pem()).expect("pem");
        assert_eq!(read, keys.public_key());
    }

    #[test]
    fn the_private_pem_reads_back_as_the_same_key() {
        let keys = TestKeys::generate();
        let again = TestKeys::from_private_pem(&keys.private_pem()).expect("pem");
        assert_eq!(again.public_key(), keys.public_key());
        assert!(TestKeys::from_private_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }

    #[test]
    fn the_jwks_holds_the_key_under_its_id() {
        let keys = TestKeys::generate();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 1);
        assert_eq!(jwks.keys[0].kid, keys.key_id());
        assert_eq!(jwks.keys[0].crv, "Ed25519");
    }
}
