//! Truncated, corrupt and foreign files: each is refused with the answer `common::imaging`'s
//! samples name, the very samples and answers images_service is tested with, as a raw body and
//! as a multipart upload alike.

use common::imaging::samples;
use reqwest::Response;
use serde_json::Value;

use crate::helpers::{metric, TestApp};

async fn assert_refused(response: Response, sample: &samples::Refused, how: &str) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].clone();
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(
        (status, body["type"].as_str()),
        (sample.status, Some(sample.problem_type)),
        "{} as {how}: {body}",
        sample.name
    );
    assert_eq!(
        content_type, "application/problem+json",
        "{} as {how}",
        sample.name
    );
}

#[tokio::test]
async fn every_refused_sample_gets_its_status_and_problem_type_and_no_score() {
    let app = TestApp::spawn().await;
    for sample in samples::refused() {
        let raw = app.predict_raw(sample.bytes.clone()).await;
        assert_refused(raw, &sample, "a raw body").await;
        let form = app.predict_multipart("file", sample.bytes.clone()).await;
        assert_refused(form, &sample, "a multipart file").await;
    }
    let metrics = app.metrics().await;
    for label in ["forgettable", "memorable"] {
        let scored = metric(&metrics, "inference_predictions_total", &[("label", label)]);
        assert_eq!(scored.unwrap_or(0.0), 0.0, "{label} predictions");
    }
}
