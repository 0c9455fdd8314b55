//! Access tokens that must be refused: expired, tampered, unsigned, HS256 with the public key.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, claims_for, now_secs, problem_detail, spawn_app, Backend};

async fn a_token_signed_by_the_service_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.sign(&claims_for(&user, Role::User, now_secs(), 60));
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

async fn an_expired_token_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.sign(&claims_for(&user, Role::User, now_secs() - 3600, 900));
    let detail = problem_detail(app.me(&token).await, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("expired"), "{detail}");
}

async fn a_token_with_a_tampered_signature_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.login_user(&user).await.access;
    let (unsigned, signature) = token.rsplit_once('.').expect("three parts");
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    bytes[0] ^= 0x01;
    let tampered = format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_problem(app.me(&tampered).await, StatusCode::UNAUTHORIZED).await;
    assert_problem(app.verify(&tampered).await, StatusCode::UNAUTHORIZED).await;
}

async fn a_token_with_tampered_claims_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.login_user(&user).await.access;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload"))
            .expect("claims");
    claims["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_problem(app.admin_stats(&forged).await, StatusCode::UNAUTHORIZED).await;
}

async fn an_unsigned_alg_none_token_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let header = json!({"alg": "none", "typ": "JWT", "kid": app.signing_key().key_id()});
    let claims =
        serde_json::to_value(claims_for(&user, Role::Admin, now_secs(), 600)).expect("claims");
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_problem(app.me(&token).await, StatusCode::UNAUTHORIZED).await;
    assert_problem(app.verify(&token).await, StatusCode::UNAUTHORIZED).await;
}

async fn an_hs256_token_keyed_with_the_public_key_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let key = app.signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.key_id());
    let claims = claims_for(&user, Role::Admin, now_secs(), 600);
    for secret in [key.public_key.clone(), key.public_pem().into_bytes()] {
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .expect("sign");
        assert_problem(app.me(&token).await, StatusCode::UNAUTHORIZED).await;
    }
}

async fn a_token_signed_by_another_key_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let other = users_service::keys::SigningKey::generate().expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(app.signing_key().key_id());
    let claims = claims_for(&user, Role::User, now_secs(), 600);
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&other.pkcs8),
    )
    .expect("sign");
    assert_problem(app.me(&token).await, StatusCode::UNAUTHORIZED).await;
}

async fn a_missing_or_garbled_authorization_header_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/me").await;
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert_problem(app.me("not-a-jwt").await, StatusCode::UNAUTHORIZED).await;
    let basic = app
        .client
        .get(app.url("/me"))
        .basic_auth("user", Some("pw"))
        .send()
        .await
        .expect("request");
    assert_problem(basic, StatusCode::UNAUTHORIZED).await;
}

testkit::on_both_databases!(
    a_token_signed_by_the_service_is_accepted,
    an_expired_token_returns_401,
    a_token_with_a_tampered_signature_returns_401,
    a_token_with_tampered_claims_returns_401,
    an_unsigned_alg_none_token_returns_401,
    an_hs256_token_keyed_with_the_public_key_returns_401,
    a_token_signed_by_another_key_returns_401,
    a_missing_or_garbled_authorization_header_returns_401,
);
