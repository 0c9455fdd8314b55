//! `GET /me`, `GET /auth/verify` and `GET /.well-known/jwks.json`.

use common::auth::{JwkSet, TokenVerifier};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app, Backend};

async fn me_returns_the_callers_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let response = app.me(&tokens.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], user.id.to_string());
    assert_eq!(body["username"], user.username.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["role"], "user");
}

async fn auth_verify_returns_the_identity_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let response = app.verify(&tokens.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("x-user-id"), Some(user.id.to_string()));
    assert_eq!(header("x-user-name"), Some(user.username.clone()));
    assert_eq!(header("x-user-role"), Some("user".to_owned()));
}

async fn auth_verify_without_a_valid_token_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/auth/verify").await;
    assert!(response.headers().get("x-user-id").is_none());
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert_problem(
        app.verify("eyJhbGciOiJFZERTQSJ9.e30.AAAA").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn the_jwks_publishes_the_key_that_verifies_issued_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.login_user(&user).await.access;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let set: JwkSet = response.json().await.expect("jwks");
    assert_eq!(set.keys.len(), 1);
    let jwk = &set.keys[0];
    assert_eq!(
        (
            jwk.kty.as_str(),
            jwk.crv.as_str(),
            jwk.alg.as_str(),
            jwk.use_.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));
    // Another service verifies with the published key alone, as images and inference do.
    let verifier = TokenVerifier::from_jwks_urls(
        vec![app.url("/.well-known/jwks.json")],
        common::auth::DEFAULT_ISSUER,
        common::auth::DEFAULT_AUDIENCE,
    );
    let claims = verifier
        .verify(&token)
        .await
        .expect("verified from the JWKS");
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.name, user.username);
}

async fn the_public_key_file_matches_the_jwks(backend: Backend) {
    let app = spawn_app(backend).await;
    let pem = std::fs::read_to_string(users_service::keys::public_key_path(&app.key_file))
        .expect(".pub file");
    let public = common::auth::ed25519_public_key_from_pem(&pem).expect("SPKI PEM");
    let set: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    assert_eq!(set.keys[0].kid, common::auth::key_id(&public));
}

testkit::on_both_databases!(
    me_returns_the_callers_profile,
    auth_verify_returns_the_identity_headers,
    auth_verify_without_a_valid_token_returns_401,
    the_jwks_publishes_the_key_that_verifies_issued_tokens,
    the_public_key_file_matches_the_jwks,
);
