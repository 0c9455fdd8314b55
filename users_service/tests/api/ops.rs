//! What every response carries, and the shared operational endpoints.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app, Backend};

async fn every_response_names_the_instance_and_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    for response in [
        app.get("/healthz").await,
        app.get("/me").await,
        app.get("/no/such/route").await,
    ] {
        assert_eq!(
            response
                .headers()
                .get("x-served-by")
                .and_then(|v| v.to_str().ok()),
            Some("users-test")
        );
        assert!(response
            .headers()
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty()));
    }
    let response = app
        .client
        .get(app.url("/me"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let body = assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["request_id"], "trace-me-42");
}

async fn an_unknown_route_is_a_problem_404(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.get("/no/such/route").await, StatusCode::NOT_FOUND).await;
}

async fn a_method_a_route_does_not_take_is_a_problem_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .delete(app.url("/login"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["allow"], "POST");
    let body = assert_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["type"], "/problems/method-not-allowed");
}

async fn readiness_and_liveness_answer_200(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

async fn readiness_fails_when_the_database_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    app.pool.close().await;
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn the_openapi_document_is_generated_for_every_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/register", "post"),
        ("/login", "post"),
        ("/token/refresh", "post"),
        ("/logout", "post"),
        ("/me", "get"),
        ("/auth/verify", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/admin/users", "get"),
        ("/admin/users/{id}", "patch"),
        ("/admin/stats", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn metrics_are_labelled_with_service_and_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_user().await;
    let text = app.get("/metrics").await.text().await.expect("text");
    let series = |name: &str, labels: &[&str]| {
        text.lines().any(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels.iter().all(|label| line.contains(label))
                && [r#"server="users-test""#, r#"service="users""#]
                    .iter()
                    .all(|label| line.contains(label))
        })
    };
    assert!(series("users_registrations_total", &[]), "{text}");
    assert_eq!(app.metric("users_registrations_total", None).await, 1.0);
    assert!(
        series(
            "http_requests_total",
            &[
                r#"method="POST""#,
                r#"route="/register""#,
                r#"status="2xx""#
            ]
        ),
        "{text}"
    );
    for name in [
        "users_logins_total",
        "users_argon2_seconds_bucket",
        "users_token_refreshes_total",
    ] {
        assert!(series(name, &[]), "{name} missing");
    }
}

testkit::on_both_databases!(
    every_response_names_the_instance_and_the_request,
    an_unknown_route_is_a_problem_404,
    a_method_a_route_does_not_take_is_a_problem_405_with_allow,
    readiness_and_liveness_answer_200,
    readiness_fails_when_the_database_is_gone,
    the_openapi_document_is_generated_for_every_endpoint,
    metrics_are_labelled_with_service_and_instance,
);
