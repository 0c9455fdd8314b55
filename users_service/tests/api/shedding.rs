//! Load shedding: a saturated instance answers 503 at once instead of queueing.
//!
//! With `MAX_IN_FLIGHT=1`, a login is held in flight deterministically by taking every argon2
//! permit first; the login then waits for a permit while occupying the instance's only slot.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn_app_with, Backend};

async fn a_saturated_instance_sheds_with_503_and_recovers(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.max_in_flight = 1;
        s.argon2.max_concurrent = 1;
    })
    .await;
    let user = app.register_user().await;

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

    // Readiness turns 503 once the login occupies the slot (polled, bounded).
    let app = &app;
    testkit::eventually(
        "the login occupies the only slot",
        Duration::from_secs(10),
        || async move { app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;

    let started = Instant::now();
    let response = app.get("/.well-known/jwks.json").await;
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
        "shedding took {elapsed:?}: it queued"
    );
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

testkit::on_both_databases!(a_saturated_instance_sheds_with_503_and_recovers);
