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

#[tokio::test]
async fn a_full_pool_answers_an_upload_503_before_reading_its_body() {
    let app = TestApp::spawn_with(|s| {
        s.pool.workers = 1;
        s.pool.queue = 0;
        s.cache_entries = 0;
    })
    .await;
    let _held = app.predictor.pool().occupy_worker().await;
    // The first kilobyte of a photo, and then nothing: the body never ends while the answer is
    // awaited, so only an answer given without reading it can arrive.
    let (more, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    more.send(Ok(photo("coffee.png")[..1024].to_vec()))
        .await
        .expect("the body is open");
    let body = futures::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        app.client
            .post(format!("{}/predict", app.address))
            .bearer_auth(&app.token)
            .header("content-type", "image/png")
            .header("content-length", "100000")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("answered while the body was still open")
    .expect("response");
    assert_eq!(
        answer
            .headers()
            .get(reqwest::header::CONNECTION)
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "the unread body closes the connection"
    );
    assert_problem(answer, StatusCode::SERVICE_UNAVAILABLE, "queue is full").await;
    drop(more);
}
