//! A stored image is fetched from images_service only when the model must run on it: a cached
//! prediction, a full queue or an image over the size limit costs no download, and only
//! `INFERENCE_DOWNLOADS` images are held in memory at once.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{assert_problem, json_with, photo, TestApp};

const BYTES: &str = "/images/{id}";
const META: &str = "/images/{id}/meta";

#[tokio::test]
async fn a_cached_prediction_does_not_fetch_the_image_again() {
    let app = TestApp::spawn().await;
    let id = app
        .upload_as(&app.token, "coffee.png", photo("coffee.png"))
        .await;
    let first = json_with(app.predict_stored(id).await, StatusCode::OK).await;
    let second = json_with(app.predict_stored(id).await, StatusCode::OK).await;
    assert_eq!(first["score"], second["score"]);
    assert_eq!(app.images_requests(BYTES).await, 1.0, "bytes fetched once");
    assert_eq!(app.images_requests(META).await, 2.0, "metadata asked twice");
}

#[tokio::test]
async fn a_full_queue_answers_503_without_fetching_the_image() {
    let app = TestApp::spawn_with(|s| {
        s.pool.workers = 1;
        s.pool.queue = 0;
    })
    .await;
    let id = app
        .upload_as(&app.token, "coffee.png", photo("coffee.png"))
        .await;
    let held = app.predictor.pool().occupy_worker().await;
    let refused = app.predict_stored(id).await;
    assert_problem(refused, StatusCode::SERVICE_UNAVAILABLE, "queue is full").await;
    assert_eq!(app.images_requests(BYTES).await, 0.0, "no download");

    drop(held);
    json_with(app.predict_stored(id).await, StatusCode::OK).await;
    assert_eq!(app.images_requests(BYTES).await, 1.0);
}

#[tokio::test]
async fn a_stored_image_over_the_size_limit_is_refused_without_being_fetched() {
    let photo = photo("coffee.png");
    let limit = photo.len() as u64 - 1;
    let app = TestApp::spawn_with(|s| s.limits.max_upload_bytes = limit).await;
    let id = app.upload_as(&app.token, "coffee.png", photo).await;
    let refused = app.predict_stored(id).await;
    assert_problem(
        refused,
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("{limit} bytes"),
    )
    .await;
    assert_eq!(app.images_requests(BYTES).await, 0.0, "no download");
}

#[tokio::test]
async fn no_more_images_than_the_download_limit_are_fetched_while_the_workers_are_busy() {
    let app = TestApp::spawn_with(|s| {
        s.pool.workers = 1;
        s.pool.queue = 3;
        s.pool.downloads = 1;
    })
    .await;
    let mut ids = Vec::new();
    for name in ["coffee.png", "chelsea.png", "rocket.jpg"] {
        ids.push(app.upload_as(&app.token, name, photo(name)).await);
    }
    // With the only worker held, the first image fetched waits for it, holding the only
    // download slot: the other two requests wait for that slot, unfetched.
    let held = app.predictor.pool().occupy_worker().await;
    let requests: Vec<_> = ids
        .iter()
        .map(|id| {
            let (client, address, token) =
                (app.client.clone(), app.address.clone(), app.token.clone());
            let url = format!("{address}/predict/{id}");
            tokio::spawn(async move { client.get(url).bearer_auth(token).send().await })
        })
        .collect();
    testkit::eventually(
        "three requests queued, one image fetched",
        Duration::from_secs(10),
        || async { app.predictor.pool().waiting() == 3 && app.images_requests(BYTES).await == 1.0 },
    )
    .await;
    assert_eq!(app.images_requests(BYTES).await, 1.0, "one image in memory");

    drop(held);
    for request in requests {
        let response = request.await.expect("task").expect("response");
        json_with(response, StatusCode::OK).await;
    }
    assert_eq!(app.images_requests(BYTES).await, 3.0);
    assert_eq!(app.predictor.pool().waiting(), 0);
}
