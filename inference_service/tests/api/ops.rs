//! Start-up, readiness and metrics.

use std::{sync::Arc, time::Duration};

use common::service::Service;
use inference_service::startup::Application;
use reqwest::StatusCode;

use crate::helpers::{assert_problem, metric, settings, tiny_dir, TestApp, TestKeys};

#[tokio::test]
async fn a_missing_model_fails_at_start_naming_the_command_that_makes_it() {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut settings = settings("http://127.0.0.1:9".to_owned());
    settings.model_dir = empty.path().to_path_buf();
    let err = Application::build_with_verifier(settings, Arc::new(TestKeys::generate().verifier()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("cargo xtask model"), "{err:#}");
}

#[tokio::test]
async fn a_damaged_model_stops_the_service_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        tiny_dir().join("manifest.json"),
        dir.path().join("manifest.json"),
    )
    .expect("copy manifest");
    std::fs::write(
        dir.path().join("model.onnx"),
        b"not the model the manifest describes",
    )
    .expect("write model");
    let mut settings = settings("http://127.0.0.1:9".to_owned());
    settings.model_dir = dir.path().to_path_buf();
    let application =
        Application::build_with_verifier(settings, Arc::new(TestKeys::generate().verifier()))
            .await
            .expect("build");
    let address = format!("http://{}", application.local_addr().expect("addr"));
    let stopped = tokio::spawn(application.run_until_stopped(std::future::pending()));

    let outcome = tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("stops by itself")
        .expect("task");
    let err = outcome.expect_err("a damaged model is an error");
    assert!(format!("{err:#}").contains("SHA-256"), "{err:#}");
    assert!(
        reqwest::get(format!("{address}/readyz")).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn healthz_readyz_and_the_model_metrics_answer_once_loaded() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "inference_model_loaded",
            &[("service", "inference")]
        ),
        Some(1.0),
        "{metrics}"
    );
    let manifest = std::fs::read_to_string(tiny_dir().join("manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("json");
    let sha256 = manifest["sha256"].as_str().expect("sha256");
    let info = [
        ("name", "tiny"),
        ("version", "1"),
        ("sha256", sha256),
        ("server", "inference-test"),
    ];
    assert_eq!(
        metric(&metrics, "inference_model_info", &info),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "inference_model_load_seconds", &[]).is_some_and(|s| s > 0.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "inference_queue_depth", &[]),
        Some(0.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_endpoints() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.expect("json");
    assert!(doc["paths"]["/predict/{image_id}"]["get"].is_object());
    assert!(doc["paths"]["/predict"]["post"].is_object());
    assert!(doc["paths"]["/model"]["get"].is_object());
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_problem_405_with_allow() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .delete(format!("{}/model", app.address))
        .send()
        .await
        .expect("DELETE /model");
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let body = assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, "Allow header").await;
    assert_eq!(body["type"], "/problems/method-not-allowed");
}
