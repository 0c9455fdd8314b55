//! Truncated, corrupt and foreign files: each is refused with the answer `common::imaging`'s
//! samples name, the very samples and answers images_service is tested with, as a raw body and
//! as a multipart upload alike; the unusual files the samples say every service accepts are scored.

use common::imaging::samples;

use crate::helpers::{metric, TestApp};

#[tokio::test]
async fn every_refused_sample_gets_its_status_and_problem_type_and_no_score() {
    let app = TestApp::spawn().await;
    for sample in samples::refused() {
        let raw = app.predict_raw(sample.bytes.clone()).await;
        sample.assert_answered_by(raw, "a raw body").await;
        let form = app.predict_multipart("file", sample.bytes.clone()).await;
        sample.assert_answered_by(form, "a multipart file").await;
    }
    let metrics = app.metrics().await;
    for label in ["forgettable", "memorable"] {
        let scored = metric(&metrics, "inference_predictions_total", &[("label", label)]);
        assert_eq!(scored.unwrap_or(0.0), 0.0, "{label} predictions");
    }
}

#[tokio::test]
async fn every_accepted_sample_is_scored_as_posted_and_as_stored() {
    let app = TestApp::spawn().await;
    for sample in samples::accepted() {
        let raw = app.predict_raw(sample.bytes.clone()).await;
        let status = raw.status();
        let body = raw.text().await.expect("body");
        assert_eq!(status, 200, "{} as a raw body: {body}", sample.name);
        let id = app
            .upload_as(&app.token, "sample.jpg", sample.bytes.clone())
            .await;
        let stored = app.predict_stored(id).await;
        let status = stored.status();
        let stored_body = stored.text().await.expect("body");
        assert_eq!(status, 200, "{} as stored: {stored_body}", sample.name);
    }
}
