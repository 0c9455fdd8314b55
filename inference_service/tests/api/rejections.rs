//! Requests that cannot be predicted get a 4xx or 503 that says why.

use std::io::Cursor;

use image::{
    codecs::png::{CompressionType, FilterType, PngEncoder},
    ImageEncoder, ImageFormat,
};
use reqwest::StatusCode;

use crate::helpers::{assert_problem, encoded, photo, TestApp, TEST_MAX_UPLOAD};

#[tokio::test]
async fn a_request_without_a_token_is_unauthorized() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    assert_problem(
        app.predict_stored_as(None, &id).await,
        StatusCode::UNAUTHORIZED,
        "bearer",
    )
    .await;
    assert_problem(
        app.predict_raw_as(None, "image/png", photo("coffee.png"))
            .await,
        StatusCode::UNAUTHORIZED,
        "bearer",
    )
    .await;
    assert_problem(app.model(None).await, StatusCode::UNAUTHORIZED, "bearer").await;
}

#[tokio::test]
async fn a_forged_token_is_unauthorized() {
    let app = TestApp::spawn().await;
    let stranger = crate::helpers::TestKeys::generate().token(uuid::Uuid::new_v4(), 600);
    let response = app
        .predict_raw_as(Some(&stranger), "image/png", photo("coffee.png"))
        .await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "not valid").await;
}

#[tokio::test]
async fn another_users_image_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.keys.token(uuid::Uuid::new_v4(), 600);
    let id = app
        .upload_as(&owner, "coffee.png", photo("coffee.png"))
        .await;
    assert_problem(
        app.predict_stored(id).await,
        StatusCode::NOT_FOUND,
        "no image",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_image_id_is_not_found() {
    let app = TestApp::spawn().await;
    assert_problem(
        app.predict_stored(uuid::Uuid::new_v4()).await,
        StatusCode::NOT_FOUND,
        "no image",
    )
    .await;
    let malformed = app.predict_stored_as(Some(&app.token), "not-a-uuid").await;
    assert_eq!(malformed.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unreachable_images_service_is_service_unavailable() {
    let closed = testkit::free_addr();
    let app = TestApp::spawn_with(|s| s.images_url = format!("http://{closed}")).await;
    let response = app.predict_stored(uuid::Uuid::new_v4()).await;
    assert!(response
        .headers()
        .contains_key(reqwest::header::RETRY_AFTER));
    assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "cannot be reached",
    )
    .await;
}

#[tokio::test]
async fn garbage_bytes_are_unsupported_media() {
    let app = TestApp::spawn().await;
    let response = app
        .predict_raw(b"%PDF-1.7 this is not an image at all".to_vec())
        .await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not a JPEG, PNG, WebP or GIF",
    )
    .await;
}

#[tokio::test]
async fn a_json_body_is_unsupported_media() {
    let app = TestApp::spawn().await;
    let response = app
        .predict_raw_as(Some(&app.token), "application/json", b"{}".to_vec())
        .await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "multipart/form-data",
    )
    .await;
}

#[tokio::test]
async fn a_truncated_image_is_unprocessable() {
    let app = TestApp::spawn().await;
    let png = photo("coffee.png");
    let response = app.predict_raw(png[..png.len() / 2].to_vec()).await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a valid PNG",
    )
    .await;
}

#[tokio::test]
async fn an_empty_body_is_unprocessable() {
    let app = TestApp::spawn().await;
    assert_problem(
        app.predict_raw(Vec::new()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty",
    )
    .await;
}

#[tokio::test]
async fn a_pixel_bomb_is_refused_from_its_header() {
    // 10000×10000 grey pixels compress to about 100 KB but would need 300 MB as RGB.
    let mut bomb = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut bomb, CompressionType::Fast, FilterType::NoFilter)
        .write_image(
            &vec![0u8; 10_000 * 10_000],
            10_000,
            10_000,
            image::ExtendedColorType::L8,
        )
        .expect("encode bomb");
    let bomb = bomb.into_inner();
    assert!(
        (bomb.len() as u64) < TEST_MAX_UPLOAD,
        "the bomb itself is small: {} bytes",
        bomb.len()
    );
    let app = TestApp::spawn().await;
    assert_problem(
        app.predict_raw(bomb).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too large to decode",
    )
    .await;
}

#[tokio::test]
async fn an_image_wider_than_the_dimension_limit_is_unprocessable() {
    let app = TestApp::spawn_with(|s| s.limits.max_image_dimension = 500).await;
    let response = app.predict_raw(encoded(501, 2, ImageFormat::Png)).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "per side").await;
}

#[tokio::test]
async fn an_oversized_body_is_too_large() {
    let app = TestApp::spawn().await;
    let mut big = photo("coffee.png");
    big.resize(TEST_MAX_UPLOAD as usize + 1, 0);
    assert_problem(
        app.predict_raw(big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
    assert_problem(
        app.predict_multipart("file", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
}

#[tokio::test]
async fn a_multipart_body_without_a_file_field_is_unprocessable() {
    let app = TestApp::spawn().await;
    let response = app.predict_multipart("picture", photo("coffee.png")).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "`file`").await;
}
