//! Every images endpoint needs a valid access token: missing, expired, tampered and foreign
//! tokens are answered 401.

use reqwest::{Method, StatusCode};

use crate::helpers::{png, Backend, TestApp, TestKeys};

const ENDPOINTS: [(Method, &str); 5] = [
    (Method::POST, "/upload"),
    (Method::GET, "/images"),
    (Method::GET, "/images/00000000-0000-0000-0000-000000000000"),
    (
        Method::GET,
        "/images/00000000-0000-0000-0000-000000000000/meta",
    ),
    (
        Method::DELETE,
        "/images/00000000-0000-0000-0000-000000000000",
    ),
];

async fn assert_refused(app: &crate::helpers::TestApp, token: Option<&str>) {
    for (method, path) in ENDPOINTS {
        let mut request = app
            .client
            .request(method.clone(), format!("{}{path}", app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if method == Method::POST {
            let part = reqwest::multipart::Part::bytes(png(4, 4, 1)).file_name("p.png");
            request = request.multipart(reqwest::multipart::Form::new().part("file", part));
        }
        let response = request.send().await.expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert!(app.stored_files().is_empty());
}

async fn a_request_without_a_token_is_401_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_refused(&app, None).await;
}

async fn an_expired_token_is_401_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.keys.token(app.user.id, -120);
    assert_refused(&app, Some(&token)).await;
}

async fn a_tampered_token_is_401_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.user.token;
    let (header, rest) = token.split_once('.').expect("jwt");
    let (payload, signature) = rest.split_once('.').expect("jwt");
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("b64"),
    )
    .expect("claims");
    claims["sub"] = serde_json::json!(uuid::Uuid::new_v4());
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        claims.to_string(),
    );
    assert_refused(&app, Some(&format!("{header}.{forged}.{signature}"))).await;
}

async fn a_token_signed_by_another_key_is_401_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = TestKeys::generate().token(app.user.id, 600);
    assert_refused(&app, Some(&token)).await;
}

testkit::on_both_databases!(
    a_request_without_a_token_is_401_everywhere,
    an_expired_token_is_401_everywhere,
    a_tampered_token_is_401_everywhere,
    a_token_signed_by_another_key_is_401_everywhere,
);
