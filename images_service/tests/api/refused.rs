//! Truncated, corrupt and foreign files: each is refused with the answer `common::imaging`'s
//! samples name, the very samples and answers inference_service is tested with; the unusual files
//! the samples say every service accepts are stored.

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

async fn every_accepted_sample_is_stored_whole_with_its_dimensions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for sample in samples::accepted() {
        let response = app.upload("sample.jpg", sample.bytes.clone()).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("upload body");
        assert_eq!(status, 201, "{}: {body}", sample.name);
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(sample.width.into()), Some(sample.height.into())),
            "{}: {body}",
            sample.name
        );
        let id = body["image_id"].as_str().expect("image_id");
        let download = app.download(&app.user, id).await;
        let stored = download.bytes().await.expect("download");
        assert!(
            stored == sample.bytes,
            "{}: the trailer is kept",
            sample.name
        );
    }
}

testkit::on_both_databases!(every_accepted_sample_is_stored_whole_with_its_dimensions);
