//! Listing, download, metadata and deletion — and that nobody reaches another user's images.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{jpeg, png, Backend, TestApp};

async fn listing_pages_through_own_images_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for seed in 0..5u8 {
        let body = app
            .upload_ok("p.png", png(10 + u32::from(seed), 10, seed))
            .await;
        ids.push(body["image_id"].as_str().expect("id").to_owned());
    }
    app.upload_as(&app.other_user(), "theirs.png", png(9, 9, 99))
        .await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = app.list(&app.user, &query).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.expect("page");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["image_id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "newest first, each once, only mine");
}

async fn listing_defaults_to_twenty_and_refuses_bad_limits_and_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page: Value = app.list(&app.user, "").await.json().await.expect("page");
    assert_eq!(page["items"], Value::Array(vec![]));
    assert_eq!(page["next_cursor"], Value::Null);
    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?cursor=not-a-cursor",
    ] {
        let response = app.list(&app.user, query).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
}

async fn downloading_returns_the_bytes_with_type_etag_and_private_caching(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = jpeg(120, 80, 1);
    let body = app.upload_ok("photo.jpg", bytes.clone()).await;
    let response = app
        .download(&app.user, body["image_id"].as_str().expect("id"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["cache-control"], "private");
    assert_eq!(
        headers["etag"],
        format!("\"{}\"", body["sha256"].as_str().expect("sha")).as_str()
    );
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        bytes.as_slice()
    );
}

async fn a_large_image_streams_back_byte_for_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Noise does not compress: about 360 KB, above the size that is read whole.
    let noise = image::RgbImage::from_fn(400, 300, |x, y| {
        let h =
            (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
        image::Rgb([(h >> 24) as u8, (h >> 16) as u8, (h >> 8) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    noise
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode");
    let bytes = bytes.into_inner();
    assert!(bytes.len() > 256 * 1024, "{} bytes", bytes.len());
    let body = app.upload_ok("noise.png", bytes.clone()).await;
    let response = app
        .download(&app.user, body["image_id"].as_str().expect("id"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        bytes.as_slice()
    );
}

async fn a_matching_if_none_match_gets_304_without_a_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.upload_ok("p.png", png(30, 30, 2)).await;
    let id = body["image_id"].as_str().expect("id");
    let etag = format!("\"{}\"", body["sha256"].as_str().expect("sha"));
    let url = format!("{}/images/{id}", app.address);
    let cached = app
        .client
        .get(&url)
        .bearer_auth(&app.user.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"], etag.as_str());
    assert!(cached.bytes().await.expect("body").is_empty());
    let stale = app
        .client
        .get(&url)
        .bearer_auth(&app.user.token)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .expect("get");
    assert_eq!(stale.status(), StatusCode::OK);
}

async fn meta_returns_what_the_upload_returned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.upload_ok("p.png", png(31, 7, 3)).await;
    let response = app
        .meta(&app.user, body["image_id"].as_str().expect("id"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.expect("meta"), body);
}

async fn deleting_removes_the_row_and_the_blob(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.upload_ok("p.png", png(16, 16, 4)).await;
    let id = body["image_id"].as_str().expect("id");
    assert_eq!(app.stored_files().len(), 1);
    // Read first, so the service holds the row and the bytes in memory when the delete comes.
    assert_eq!(app.download(&app.user, id).await.status(), StatusCode::OK);
    assert_eq!(app.meta(&app.user, id).await.status(), StatusCode::OK);
    assert_eq!(
        app.delete(&app.user, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert_eq!(
        app.meta(&app.user, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.download(&app.user, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&app.user, id).await.status(),
        StatusCode::NOT_FOUND
    );
    let page: Value = app.list(&app.user, "").await.json().await.expect("page");
    assert_eq!(page["items"], Value::Array(vec![]));
}

async fn another_users_image_is_not_found_for_get_meta_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app.upload_ok("mine.png", png(16, 16, 5)).await;
    let id = body["image_id"].as_str().expect("id");
    let stranger = app.other_user();
    assert_eq!(
        app.download(&stranger, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.meta(&stranger, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&stranger, id).await.status(),
        StatusCode::NOT_FOUND
    );
    let page: Value = app.list(&stranger, "").await.json().await.expect("page");
    assert_eq!(page["items"], Value::Array(vec![]));
    assert_eq!(
        app.download(&app.user, id).await.status(),
        StatusCode::OK,
        "still there for its owner"
    );
}

async fn malformed_and_unknown_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for id in [
        "not-a-uuid",
        "123",
        "..%2F..%2Fetc%2Fpasswd",
        &uuid::Uuid::new_v4().to_string(),
    ] {
        for path in [format!("/images/{id}"), format!("/images/{id}/meta")] {
            let response = app.get_path(&app.user, &path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        assert_eq!(
            app.delete(&app.user, id).await.status(),
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
}

testkit::on_both_databases!(
    listing_pages_through_own_images_newest_first,
    listing_defaults_to_twenty_and_refuses_bad_limits_and_cursors,
    downloading_returns_the_bytes_with_type_etag_and_private_caching,
    a_large_image_streams_back_byte_for_byte,
    a_matching_if_none_match_gets_304_without_a_body,
    meta_returns_what_the_upload_returned,
    deleting_removes_the_row_and_the_blob,
    another_users_image_is_not_found_for_get_meta_and_delete,
    malformed_and_unknown_ids_are_not_found,
);
