//! Predictions on stored images and on posted bytes.

use reqwest::StatusCode;

use crate::helpers::{expected_photo_score, json_with, metric, photo, TestApp};

#[tokio::test]
async fn a_stored_image_and_the_same_bytes_posted_get_the_same_score() {
    // No cache: both answers come from a model run.
    let app = TestApp::spawn_with(|s| s.cache_entries = 0).await;
    let id = app
        .upload_as(&app.token, "coffee.png", photo("coffee.png"))
        .await;

    let stored = json_with(app.predict_stored(id).await, StatusCode::OK).await;
    let posted = json_with(app.predict_raw(photo("coffee.png")).await, StatusCode::OK).await;

    assert_eq!(stored["image_id"], id.to_string());
    assert!(
        posted.get("image_id").is_none(),
        "POST answers carry no image id: {posted}"
    );
    assert_eq!(stored["score"], posted["score"]);
    let score = stored["score"].as_f64().expect("score");
    let reference = expected_photo_score("coffee.png");
    assert!(
        (score - reference).abs() < 1e-5,
        "score {score} vs Pillow+onnxruntime {reference}"
    );
}

#[tokio::test]
async fn an_answer_names_the_label_threshold_and_model() {
    let app = TestApp::spawn().await;
    let body = json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    // The reference runtime scores chelsea.png about 0.462, under the tiny manifest's 0.5.
    let score = body["score"].as_f64().expect("score");
    let reference = expected_photo_score("chelsea.png");
    assert!(
        (score - reference).abs() < 1e-5,
        "score {score} vs {reference}"
    );
    assert_eq!(body["threshold"], 0.5, "the tiny manifest's threshold");
    assert_eq!(body["prediction"], "forgettable");
    assert_eq!(body["model"]["name"], "tiny");
    assert_eq!(body["model"]["version"], "1");
    assert_eq!(body["model"]["sha256"].as_str().map(str::len), Some(64));
    assert!(body["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
}

#[tokio::test]
async fn a_score_under_the_threshold_is_forgettable_and_one_above_it_memorable() {
    // The reference scores are rocket.jpg ≈ 0.449 and chelsea.png ≈ 0.462: 0.455 splits them.
    let app = TestApp::spawn_with(|s| s.threshold = Some(0.455)).await;
    let rocket = json_with(app.predict_raw(photo("rocket.jpg")).await, StatusCode::OK).await;
    let chelsea = json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    assert_eq!(rocket["prediction"], "forgettable", "{rocket}");
    assert_eq!(chelsea["prediction"], "memorable", "{chelsea}");
}

#[tokio::test]
async fn a_multipart_file_scores_like_the_raw_body() {
    let app = TestApp::spawn_with(|s| s.cache_entries = 0).await;
    let multipart = json_with(
        app.predict_multipart("file", photo("rocket.jpg")).await,
        StatusCode::OK,
    )
    .await;
    let raw = json_with(app.predict_raw(photo("rocket.jpg")).await, StatusCode::OK).await;
    assert_eq!(multipart["score"], raw["score"]);
}

#[tokio::test]
async fn an_image_content_type_is_accepted_for_the_raw_body() {
    let app = TestApp::spawn().await;
    let response = app
        .predict_raw_as(Some(&app.token), "image/png", photo("coffee.png"))
        .await;
    json_with(response, StatusCode::OK).await;
}

#[tokio::test]
async fn a_repeated_image_is_answered_from_the_cache() {
    let app = TestApp::spawn().await;
    let first = json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    let second = json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    assert_eq!(first["score"], second["score"]);
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "inference_cache_misses_total", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "inference_cache_hits_total", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "inference_seconds_count", &[]),
        Some(1.0),
        "one model run: {metrics}"
    );
}

#[tokio::test]
async fn the_threshold_setting_overrides_the_manifest() {
    let app = TestApp::spawn_with(|s| s.threshold = Some(0.0)).await;
    let body = json_with(app.predict_raw(photo("coffee.png")).await, StatusCode::OK).await;
    assert_eq!(body["threshold"], 0.0);
    assert_eq!(body["prediction"], "memorable", "every score is at least 0");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_predictions_total",
            &[("label", "memorable")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
