//! Operational endpoints: health, readiness, metrics, OpenAPI, and the shared headers.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

async fn health_readiness_and_the_served_by_header_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["x-served-by"], "images-test");
        assert!(response.headers().contains_key("x-request-id"));
    }
}

async fn a_method_a_route_does_not_take_is_a_problem_405_with_allow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .client
        .put(format!("{}/upload", app.address))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], 405);
    assert_eq!(body["type"], "/problems/method-not-allowed");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("Allow")));
}

async fn metrics_expose_the_upload_counters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upload_ok("p.png", crate::helpers::png(5, 5, 1)).await;
    let text = app.metrics_text().await;
    for name in [
        "images_uploads_total",
        "images_upload_bytes_total",
        "images_upload_rejections_total{reason=\"too_large\"",
        "images_deduplicated_total",
        "images_orphans_swept_total",
        "http_requests_total{method=\"POST\",route=\"/upload\"",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

async fn the_openapi_document_lists_every_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    for path in ["/upload", "/images", "/images/{id}", "/images/{id}/meta"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/images/{id}"]["delete"].is_object());
}

testkit::on_both_databases!(
    health_readiness_and_the_served_by_header_answer,
    a_method_a_route_does_not_take_is_a_problem_405_with_allow,
    metrics_expose_the_upload_counters,
    the_openapi_document_lists_every_endpoint,
);
