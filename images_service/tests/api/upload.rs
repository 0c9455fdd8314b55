//! `POST /upload`: accepted types, deduplication, and every way an upload is refused.

use std::time::{Duration, Instant};

use common::imaging::samples::png_claiming;
use image::ImageFormat;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{encoded, jpeg, png, stream_raw_upload, Backend, TestApp, TEST_MAX_UPLOAD};

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.expect("problem body")
}

/// The problem's `detail` says `text`.
fn assert_detail_mentions(body: &Value, text: &str) {
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains(text), "{body}");
}

/// The upload was counted as refused for `reason` and left nothing in the store.
async fn assert_refused_for(app: &TestApp, reason: &str) {
    let counter = format!("images_upload_rejections_total{{reason=\"{reason}\"");
    assert_eq!(app.metric(&counter).await, 1.0, "{counter}");
    let stored = app.stored_files();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

async fn every_accepted_type_in_several_sizes_is_stored_with_its_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (ImageFormat::Jpeg, "image/jpeg", 64, 48),
        (ImageFormat::Jpeg, "image/jpeg", 640, 480),
        (ImageFormat::Png, "image/png", 1, 1),
        (ImageFormat::Png, "image/png", 300, 200),
        (ImageFormat::WebP, "image/webp", 17, 31),
        (ImageFormat::WebP, "image/webp", 256, 256),
        (ImageFormat::Gif, "image/gif", 10, 10),
        (ImageFormat::Gif, "image/gif", 120, 90),
    ];
    for (seed, (format, mime, width, height)) in cases.into_iter().enumerate() {
        let bytes = encoded(format, width, height, seed as u8);
        let body = app.upload_ok("picture.bin", bytes.clone()).await;
        assert_eq!(body["content_type"], mime);
        assert_eq!(body["width"], width);
        assert_eq!(body["height"], height);
        assert_eq!(body["bytes"], bytes.len());
        assert_eq!(body["sha256"], hex::encode(Sha256::digest(&bytes)));
        let created = body["created_at"].as_str().expect("created_at");
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .expect("created_at is RFC 3339");
        assert!(body["image_id"]
            .as_str()
            .expect("id")
            .parse::<uuid::Uuid>()
            .is_ok());
    }
    assert_eq!(app.metric("images_uploads_total").await, 8.0);
}

async fn the_same_bytes_uploaded_again_return_the_existing_image_with_200(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = png(40, 30, 1);
    let first = app.upload_ok("a.png", bytes.clone()).await;
    let again = app.upload("renamed.png", bytes).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("body");
    assert_eq!(again, first);
    assert_eq!(app.metric("images_deduplicated_total").await, 1.0);
    let blobs = app.stored_files();
    assert_eq!(
        blobs,
        vec![format!("blobs/{}", first["image_id"].as_str().expect("id"))],
        "no duplicate blob"
    );
}

async fn the_same_bytes_from_another_user_become_their_own_image(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = png(40, 30, 2);
    let mine = app.upload_ok("a.png", bytes.clone()).await;
    let response = app.upload_as(&app.other_user(), "a.png", bytes).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let theirs: Value = response.json().await.expect("body");
    assert_ne!(theirs["image_id"], mine["image_id"]);
    assert_eq!(theirs["sha256"], mine["sha256"]);
}

async fn a_form_without_a_file_field_is_refused_with_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let form = reqwest::multipart::Form::new().text("note", "no file here");
    let response = app
        .client
        .post(format!("{}/upload", app.address))
        .bearer_auth(&app.user.token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_detail_mentions(&body, "`file`");
    assert_refused_for(&app, "missing_file").await;
}

async fn an_empty_file_is_refused_with_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = problem(
        app.upload("empty.png", Vec::new()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_detail_mentions(&body, "empty");
    assert_refused_for(&app, "empty").await;
}

async fn a_text_file_named_like_a_jpeg_is_refused_with_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let text = b"I am plain text pretending to be a photo.\n".repeat(10);
    let body = problem(
        app.upload("holiday.jpg", text).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_detail_mentions(&body, "JPEG, PNG, WebP or GIF");
    assert_refused_for(&app, "unsupported_type").await;
}

async fn a_truncated_jpeg_is_refused_with_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bytes = jpeg(200, 150, 3);
    bytes.truncate(bytes.len() * 2 / 3);
    let body = problem(
        app.upload("cut.jpg", bytes).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], "/problems/corrupt-image");
    assert_refused_for(&app, "corrupt").await;
}

async fn a_png_claiming_a_hundred_thousand_pixels_square_is_refused_quickly_with_422(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let started = Instant::now();
    let response = app.upload("bomb.png", png_claiming(100_000, 100_000)).await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(body["type"], "/problems/too-many-pixels");
    assert_refused_for(&app, "too_many_pixels").await;
}

async fn a_file_over_the_limit_is_refused_with_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bytes = png(8, 8, 4);
    bytes.resize(TEST_MAX_UPLOAD as usize + 1, 0);
    let body = problem(
        app.upload("large.png", bytes).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_detail_mentions(&body, &TEST_MAX_UPLOAD.to_string());
    assert_refused_for(&app, "too_large").await;
}

async fn a_file_exactly_at_the_limit_is_read_to_the_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bytes = png(8, 8, 5);
    bytes.resize(TEST_MAX_UPLOAD as usize, 0);
    // Padded after IEND, so it reads in full and then fails the end-marker check: not 413.
    let response = app.upload("exact.png", bytes).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn the_server_stops_reading_a_streamed_upload_far_over_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let total = 512 * 1024 * 1024;
    let outcome = stream_raw_upload(app.addr, &app.user.token, total).await;
    assert!(
        outcome.sent < 64 * 1024 * 1024,
        "the client could push {} bytes of a {} byte upload with a {} byte limit",
        outcome.sent,
        total,
        TEST_MAX_UPLOAD
    );
    if let Some(status) = outcome.status {
        assert_eq!(status, 413);
    }
    assert_refused_for(&app, "too_large").await;
}

async fn a_file_name_with_dot_dot_is_stored_under_its_uuid_and_nowhere_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.upload_ok("../../../escaped.png", png(12, 12, 6)).await;
    let id = body["image_id"].as_str().expect("id");
    assert_eq!(app.stored_files(), vec![format!("blobs/{id}")]);
    let outside = crate::helpers::files_under(app.dir.path());
    assert!(
        outside.iter().all(|f| !f.contains("escaped")),
        "{outside:?}"
    );
    let parent = app.dir.path().parent().expect("parent");
    assert!(!parent.join("escaped.png").exists());
}

/// `POST /upload` with a PNG as the raw body, labelled `content_type`.
async fn upload_raw(app: &TestApp, content_type: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/upload", app.address))
        .bearer_auth(&app.user.token)
        .header("content-type", content_type)
        .body(png(4, 4, 7))
        .send()
        .await
        .expect("request")
}

async fn a_body_that_is_not_multipart_is_refused_with_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = upload_raw(&app, "image/png").await;
    let body = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_detail_mentions(&body, "multipart/form-data");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

async fn a_multipart_body_without_a_boundary_is_refused_with_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = upload_raw(&app, "multipart/form-data").await;
    let body = problem(response, StatusCode::BAD_REQUEST).await;
    assert_detail_mentions(&body, "boundary");
}

testkit::on_both_databases!(
    every_accepted_type_in_several_sizes_is_stored_with_its_metadata,
    the_same_bytes_uploaded_again_return_the_existing_image_with_200,
    the_same_bytes_from_another_user_become_their_own_image,
    a_form_without_a_file_field_is_refused_with_422,
    an_empty_file_is_refused_with_422,
    a_text_file_named_like_a_jpeg_is_refused_with_415,
    a_truncated_jpeg_is_refused_with_422,
    a_png_claiming_a_hundred_thousand_pixels_square_is_refused_quickly_with_422,
    a_file_over_the_limit_is_refused_with_413,
    a_file_exactly_at_the_limit_is_read_to_the_end,
    the_server_stops_reading_a_streamed_upload_far_over_the_limit,
    a_file_name_with_dot_dot_is_stored_under_its_uuid_and_nowhere_else,
    a_body_that_is_not_multipart_is_refused_with_415,
    a_multipart_body_without_a_boundary_is_refused_with_400,
);
