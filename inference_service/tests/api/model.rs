//! `GET /model`.

use reqwest::StatusCode;

use crate::helpers::{json_with, tiny_dir, TestApp};

#[tokio::test]
async fn the_model_endpoint_describes_the_loaded_model() {
    let app = TestApp::spawn().await;
    let body = json_with(app.model(Some(&app.token)).await, StatusCode::OK).await;
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_dir().join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(body["name"], "tiny");
    assert_eq!(body["version"], "1");
    assert_eq!(body["sha256"], manifest["sha256"]);
    assert_eq!(body["engine"], "tract", "the default engine");
    assert_eq!(body["precision"], "fp32", "a manifest without precision");
    assert_eq!(body["input"]["height"], 32);
    assert_eq!(body["input"]["width"], 32);
    assert_eq!(body["threshold"], 0.5);
    assert_eq!(body["output"], "sigmoid_score");
    assert_eq!(body["licence"], manifest["licence"]);
}
