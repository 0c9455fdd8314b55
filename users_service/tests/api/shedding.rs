//! Load shedding: a saturated instance answers 503 at once instead of queueing.
//!
//! With `MAX_IN_FLIGHT=1`, a login is held in flight deterministically by taking every argon2
//! permit first; the login then waits for a permit while occupying the instance's only slot.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use reqwest::{Response, StatusCode};
use tokio::{sync::OwnedSemaphorePermit, task::JoinHandle};

use crate::helpers::{assert_problem, spawn_app_with, Backend, TestApp, TestUser};

/// Takes the only argon2 permit, then starts a login that waits for it; the login finishes once
/// the returned permit is dropped.
async fn a_login_waiting_for_a_hash(
    app: &TestApp,
    user: &TestUser,
) -> (OwnedSemaphorePermit, JoinHandle<StatusCode>) {
    let held = app
        .argon2_permits
        .clone()
        .acquire_owned()
        .await
        .expect("take the only argon2 permit");
    let login = tokio::spawn({
        let request = app.client.post(app.url("/login")).json(&serde_json::json!({
            "username": user.username, "password": user.password,
        }));
        async move { request.send().await.expect("login").status() }
    });
    (held, login)
}

/// `request` is answered 503 with `Retry-After: 1` in under a second: refused, not queued.
async fn assert_refused_at_once(request: impl Future<Output = Response>) {
    let started = Instant::now();
    let response = request.await;
    let elapsed = started.elapsed();
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        elapsed < Duration::from_secs(1),
        "refusing took {elapsed:?}: it queued"
    );
}

async fn a_saturated_instance_sheds_with_503_and_recovers(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.max_in_flight = 1;
        s.argon2.max_concurrent = 1;
    })
    .await;
    let user = app.register_user().await;
    let (held, login) = a_login_waiting_for_a_hash(&app, &user).await;

    // Readiness turns 503 once the login occupies the slot (polled, bounded).
    let app = &app;
    testkit::eventually(
        "the login occupies the only slot",
        Duration::from_secs(10),
        || async move { app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;

    assert_refused_at_once(app.get("/.well-known/jwks.json")).await;
    assert!(!login.is_finished(), "the held login is still in flight");
    assert!(app.metric("http_requests_shed_total", None).await >= 1.0);

    drop(held);
    assert_eq!(login.await.expect("login task"), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/.well-known/jwks.json").await.status(),
        StatusCode::OK
    );
}

async fn a_full_password_queue_answers_503_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.argon2.max_concurrent = 1;
        s.argon2.max_queue = 1;
    })
    .await;
    let user = app.register_user().await;
    let (held, queued) = a_login_waiting_for_a_hash(&app, &user).await;
    let app = &app;
    testkit::eventually(
        "a login waits for the hashing slot",
        Duration::from_secs(10),
        || async move { app.metric("users_argon2_queued", None).await == 1.0 },
    )
    .await;

    assert_refused_at_once(app.login(&user.username, &user.password)).await;

    drop(held);
    assert_eq!(queued.await.expect("login task"), StatusCode::OK);
    assert_eq!(app.metric("users_argon2_queued", None).await, 0.0);
}

testkit::on_both_databases!(
    a_saturated_instance_sheds_with_503_and_recovers,
    a_full_password_queue_answers_503_at_once,
);
