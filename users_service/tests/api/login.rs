//! `POST /login`: credentials, identical failures, and rate limiting.

use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, Backend, TestApp};

async fn the_right_password_returns_a_bearer_token_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app.login(&user.username, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() == 43),
        "{body}"
    );
    let token = body["token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("jwt header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid, Some(app.signing_key().key_id()));
}

async fn the_username_matches_in_any_letter_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(
        app.login(&user.username.to_uppercase(), &user.password)
            .await
            .status(),
        StatusCode::OK
    );
}

async fn a_wrong_password_and_an_unknown_user_get_the_same_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let wrong_password = assert_problem(
        app.login(&user.username, "not the password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown_user = assert_problem(
        app.login("nobody_here", "not the password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let malformed = assert_problem(app.login("x", "y").await, StatusCode::UNAUTHORIZED).await;
    let strip = |mut v: Value| {
        v.as_object_mut().expect("object").remove("request_id");
        v
    };
    assert_eq!(strip(wrong_password.clone()), strip(unknown_user));
    assert_eq!(strip(wrong_password), strip(malformed));
}

/// Status, headers (but `Date`) and body bytes of a login sent with a fixed request id.
async fn login_answer(
    app: &TestApp,
    username: &str,
    password: &str,
) -> (u16, Vec<String>, Vec<u8>) {
    let response = app
        .client
        .post(app.url("/login"))
        .header("x-request-id", "same-request-id")
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let mut headers: Vec<String> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::DATE)
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    headers.sort();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn a_disabled_account_with_the_right_password_gets_the_wrong_password_answer(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let admin_token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let disabled = app
        .patch_user(
            &admin_token,
            &user.id.to_string(),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    let wrong_password = login_answer(&app, &user.username, "not the password").await;
    let right_password = login_answer(&app, &user.username, &user.password).await;
    assert_eq!(wrong_password.0, StatusCode::UNAUTHORIZED.as_u16());
    assert_eq!(
        right_password,
        wrong_password,
        "right password:\n{}\nwrong password:\n{}",
        String::from_utf8_lossy(&right_password.2),
        String::from_utf8_lossy(&wrong_password.2)
    );
}

async fn an_unknown_field_in_a_login_returns_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"username": "someone", "password": "password123", "remember_me": true});
    let body = assert_problem(
        app.post_json("/login", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("remember_me")),
        "{body}"
    );
}

async fn logins_beyond_the_per_username_quota_get_429_with_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_rate_per_user = 3.try_into().expect("non-zero")
    })
    .await;
    let user = app.register_user().await;
    for _ in 0..3 {
        assert_eq!(
            app.login(&user.username, "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = app.login(&user.username, &user.password).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        app.metric("users_logins_total", Some(r#"result="rate_limited""#))
            .await,
        1.0
    );
}

async fn logins_beyond_the_per_ip_quota_get_429(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_rate_per_ip = 2.try_into().expect("non-zero")
    })
    .await;
    assert_eq!(
        app.login("first_user", "password123").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("second_user", "password123").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.login("third_user", "password123").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

async fn behind_a_trusted_proxy_the_forwarded_client_is_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.login_rate_per_ip = 2.try_into().expect("non-zero")
    })
    .await;
    let login_from = |ip: &'static str| {
        let request = app
            .client
            .post(app.url("/login"))
            .header("x-forwarded-for", format!("6.6.6.6, {ip}"))
            .json(&json!({"username": "someone", "password": "password123"}));
        async move { request.send().await.expect("request").status() }
    };
    // The test client connects from 127.0.0.1, a trusted proxy: each forwarded client has its own quota.
    for ip in [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.1",
        "192.0.2.2",
    ] {
        assert_eq!(login_from(ip).await, StatusCode::UNAUTHORIZED, "{ip}");
    }
    assert_eq!(login_from("192.0.2.1").await, StatusCode::TOO_MANY_REQUESTS);
}

async fn login_outcomes_are_counted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.login_user(&user).await;
    assert_eq!(
        app.login(&user.username, "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.metric("users_logins_total", Some(r#"result="ok""#))
            .await,
        1.0
    );
    assert_eq!(
        app.metric("users_logins_total", Some(r#"result="failed""#))
            .await,
        1.0
    );
    assert_eq!(app.metric("users_registrations_total", None).await, 1.0);
    assert!(app.metric("users_argon2_seconds_count", None).await >= 3.0);
}

testkit::on_both_databases!(
    the_right_password_returns_a_bearer_token_pair,
    the_username_matches_in_any_letter_case,
    a_wrong_password_and_an_unknown_user_get_the_same_401,
    a_disabled_account_with_the_right_password_gets_the_wrong_password_answer,
    an_unknown_field_in_a_login_returns_422,
    logins_beyond_the_per_username_quota_get_429_with_retry_after,
    logins_beyond_the_per_ip_quota_get_429,
    behind_a_trusted_proxy_the_forwarded_client_is_rate_limited,
    login_outcomes_are_counted,
);
