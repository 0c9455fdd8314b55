//! Truncated, corrupt and foreign files: each is refused with the answer `common::imaging`'s
//! samples name, the very samples and answers inference_service is tested with.

use common::imaging::samples;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

async fn every_refused_sample_gets_its_status_and_problem_type_and_nothing_is_stored(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for sample in samples::refused() {
        let response = app.upload("sample.bin", sample.bytes).await;
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].clone();
        let body: Value = response.json().await.expect("problem body");
        assert_eq!(
            (status, body["type"].as_str()),
            (sample.status, Some(sample.problem_type)),
            "{}: {body}",
            sample.name
        );
        assert_eq!(content_type, "application/problem+json", "{}", sample.name);
    }
    assert!(
        app.stored_files().is_empty(),
        "stored: {:?}",
        app.stored_files()
    );
    assert_eq!(app.metric("images_uploads_total").await, 0.0);
}

testkit::on_both_databases!(
    every_refused_sample_gets_its_status_and_problem_type_and_nothing_is_stored
);
