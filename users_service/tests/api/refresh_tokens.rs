//! `POST /token/refresh` and `POST /logout`: rotation, reuse detection, revocation.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, problem_detail, spawn_app, Backend, Tokens};

async fn a_refresh_token_buys_a_new_working_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
    let third = Tokens::from_response(app.refresh(&second.refresh).await).await;
    assert_eq!(app.me(&third.access).await.status(), StatusCode::OK);
    assert_eq!(
        app.metric("users_token_refreshes_total", Some(r#"result="ok""#))
            .await,
        2.0
    );
}

async fn a_refresh_token_used_twice_revokes_its_whole_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let other_session = app.login_user(&user).await;
    let second = Tokens::from_response(app.refresh(&first.refresh).await).await;

    let detail = problem_detail(app.refresh(&first.refresh).await, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("already used"), "{detail}");
    // The newest token of the family is revoked too: whoever holds it must log in again.
    assert_problem(app.refresh(&second.refresh).await, StatusCode::UNAUTHORIZED).await;
    // Another login (another family) is untouched.
    assert_eq!(
        app.refresh(&other_session.refresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.metric("users_token_refreshes_total", Some(r#"result="reused""#))
            .await,
        1.0
    );
}

async fn the_same_refresh_token_sent_concurrently_succeeds_at_most_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let attempts = (0..4).map(|_| app.refresh(&tokens.refresh));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok <= 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

async fn logging_out_returns_204_and_revokes_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let response = app.logout(&tokens.refresh).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED).await;
    // Logging out again, or with a token nobody issued, is harmless.
    assert_eq!(
        app.logout(&tokens.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.logout("never-issued").await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn an_unknown_refresh_token_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(
        app.refresh("c29tZXRoaW5nIG1hZGUgdXA").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.metric("users_token_refreshes_total", Some(r#"result="invalid""#))
            .await,
        1.0
    );
}

async fn an_expired_refresh_token_returns_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = 0 WHERE user_id = $1")
        .bind(user.id.to_string())
        .execute(&app.pool)
        .await
        .expect("expire");
    let detail = problem_detail(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("log in again"), "{detail}");
}

async fn only_the_hash_of_a_refresh_token_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens WHERE user_id = $1")
            .bind(user.id.to_string())
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(
        stored,
        vec![users_service::tokens::hash_refresh_token(&tokens.refresh)]
    );
}

async fn a_refresh_request_with_an_unknown_field_returns_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"refresh_token": "x", "token": "y"});
    assert_problem(
        app.post_json("/token/refresh", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        app.post_json("/logout", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

testkit::on_both_databases!(
    a_refresh_token_buys_a_new_working_pair,
    a_refresh_token_used_twice_revokes_its_whole_family,
    the_same_refresh_token_sent_concurrently_succeeds_at_most_once,
    logging_out_returns_204_and_revokes_the_session,
    an_unknown_refresh_token_returns_401,
    an_expired_refresh_token_returns_401,
    only_the_hash_of_a_refresh_token_is_stored,
    a_refresh_request_with_an_unknown_field_returns_422,
);
