//! A full inference queue refuses new work at once and the service stays up.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{assert_problem, json_with, metric, photo, TestApp};

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_the_service_recovers() {
    let app = TestApp::spawn_with(|s| {
        s.pool.workers = 1;
        s.pool.queue = 1;
        s.cache_entries = 0;
    })
    .await;
    // Hold the only worker, so the next request waits in the single queue slot.
    let held = app.predictor.pool().occupy_worker().await;
    let queued = {
        let (client, address, token) = (app.client.clone(), app.address.clone(), app.token.clone());
        tokio::spawn(async move {
            client
                .post(format!("{address}/predict"))
                .bearer_auth(token)
                .body(photo("coffee.png"))
                .send()
                .await
        })
    };
    testkit::eventually(
        "the first request reaches the queue",
        Duration::from_secs(5),
        || std::future::ready(app.predictor.pool().waiting() >= 1),
    )
    .await;
    assert_eq!(
        metric(&app.metrics().await, "inference_queue_depth", &[]),
        Some(1.0)
    );

    let refused = app.predict_raw(photo("chelsea.png")).await;
    assert_eq!(
        refused
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_problem(refused, StatusCode::SERVICE_UNAVAILABLE, "queue is full").await;
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "alive while saturated"
    );

    drop(held);
    let served = queued.await.expect("task").expect("response");
    json_with(served, StatusCode::OK).await;
    json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    assert_eq!(app.predictor.pool().waiting(), 0);
}
