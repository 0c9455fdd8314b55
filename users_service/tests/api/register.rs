//! `POST /register` and the input rules every body follows.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, problem_detail, spawn_app, spawn_app_with, unique_name, Backend,
};

async fn registering_with_valid_data_returns_201_and_the_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let name = unique_name("Alice");
    let response = app
        .register(
            &name,
            &format!("{name}@example.com"),
            "correct horse battery",
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["username"], name.as_str());
    assert_eq!(body["email"], format!("{name}@example.com"));
    assert_eq!(body["role"], "user");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{body}"
    );
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{body}"
    );
    assert!(body.get("password_hash").is_none() && body.get("password").is_none());
}

async fn the_password_is_stored_only_as_an_argon2id_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user.id.to_string())
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(&user.password));
}

async fn a_taken_username_in_any_letter_case_returns_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app
        .register(
            &user.username.to_uppercase(),
            "other@example.com",
            "password123",
        )
        .await;
    let detail = problem_detail(response, StatusCode::CONFLICT).await;
    assert!(detail.contains("username"), "{detail}");
}

async fn a_taken_email_returns_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app
        .register(
            &unique_name("other"),
            &user.email.to_uppercase(),
            "password123",
        )
        .await;
    let detail = problem_detail(response, StatusCode::CONFLICT).await;
    assert!(detail.contains("email"), "{detail}");
}

async fn a_taken_username_or_email_costs_no_password_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let hashes = app.metric("users_argon2_seconds_count", None).await;
    for (username, email) in [
        (user.username.clone(), "other@example.com".to_owned()),
        (unique_name("other"), user.email.clone()),
    ] {
        let response = app.register(&username, &email, "password123").await;
        assert_problem(response, StatusCode::CONFLICT).await;
    }
    assert_eq!(
        app.metric("users_argon2_seconds_count", None).await,
        hashes,
        "a refused registration ran a password hash"
    );
}

async fn registrations_beyond_the_per_address_quota_get_429_before_hashing(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.register_rate_per_ip = 2.try_into().expect("non-zero");
    })
    .await;
    app.register_user().await;
    app.register_user().await;
    let hashes = app.metric("users_argon2_seconds_count", None).await;
    let name = unique_name("third");
    let response = app
        .register(&name, &format!("{name}@example.com"), "password123")
        .await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(app.metric("users_argon2_seconds_count", None).await, hashes);
    assert_eq!(
        app.login("someone", "password123").await.status(),
        StatusCode::UNAUTHORIZED,
        "logins keep their own quota"
    );
}

async fn every_invalid_field_returns_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_password = "p".repeat(129);
    let long_name = "n".repeat(33);
    let cases = [
        ("ab", "a@example.com", "password123", "username"),
        (
            long_name.as_str(),
            "a@example.com",
            "password123",
            "username",
        ),
        ("has space", "a@example.com", "password123", "username"),
        ("bad!char", "a@example.com", "password123", "username"),
        ("valid_name", "not-an-email", "password123", "email"),
        ("valid_name", "a@localhost", "password123", "email"),
        ("valid_name", "a@example.com", "short", "password"),
        (
            "valid_name",
            "a@example.com",
            long_password.as_str(),
            "password",
        ),
    ];
    for (username, email, password, field) in cases {
        let response = app.register(username, email, password).await;
        let detail = problem_detail(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(detail.contains(&format!("`{field}`")), "{field}: {detail}");
    }
}

async fn an_unknown_field_returns_422_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"username": "someone", "email": "s@example.com", "password": "password123", "is_admin": true});
    let detail = problem_detail(
        app.post_json("/register", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("is_admin"), "{detail}");
}

async fn a_missing_field_returns_422_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"username": "someone", "password": "password123"});
    let detail = problem_detail(
        app.post_json("/register", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("email"), "{detail}");
}

async fn malformed_json_returns_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.post_raw("/register", r#"{"username": "x", "#).await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;
}

async fn a_body_over_16_kib_returns_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let body =
        json!({"username": "someone", "email": "s@example.com", "password": "x".repeat(17 * 1024)})
            .to_string();
    let response = app.post_raw("/register", body).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

async fn a_body_that_is_not_json_returns_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .post(app.url("/register"))
        .body("username=x")
        .send()
        .await
        .expect("request");
    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

testkit::on_both_databases!(
    registering_with_valid_data_returns_201_and_the_profile,
    the_password_is_stored_only_as_an_argon2id_hash,
    a_taken_username_in_any_letter_case_returns_409,
    a_taken_email_returns_409,
    a_taken_username_or_email_costs_no_password_hash,
    registrations_beyond_the_per_address_quota_get_429_before_hashing,
    every_invalid_field_returns_422_naming_the_field,
    an_unknown_field_returns_422_naming_it,
    a_missing_field_returns_422_naming_it,
    malformed_json_returns_400,
    a_body_over_16_kib_returns_413,
    a_body_that_is_not_json_returns_415,
);
