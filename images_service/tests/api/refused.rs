//! Truncated, corrupt and foreign files: each is refused with the answer `common::imaging`'s
//! samples name, the very samples and answers inference_service is tested with.

use common::imaging::samples;

use crate::helpers::{Backend, TestApp};

async fn every_refused_sample_gets_its_status_and_problem_type_and_nothing_is_stored(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for sample in samples::refused() {
        let response = app.upload("sample.bin", sample.bytes.clone()).await;
        sample.assert_answered_by(response, "an upload").await;
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
