//! `GET /images`, `GET /images/{id}`, `GET /images/{id}/meta`, `DELETE /images/{id}`: a user's
//! own images only; anyone else's are answered 404 as if they did not exist.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use common::{
    auth::AuthUser,
    openapi::Binary,
    pagination::{PageRequest, PageSizes},
    problem::{AppJson, AppPath, AppQuery},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ImageMeta;
use crate::{
    db,
    domain::{etag, Cursor},
    error::{Error, Result},
    state::AppState,
    storage::BlobStore,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/images", get(list))
        .route("/images/{id}", get(download).delete(delete))
        .route("/images/{id}/meta", get(meta))
}

const PAGE_SIZES: PageSizes = PageSizes {
    default: 20,
    max: 100,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Page size, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of the caller's images, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ImageList {
    items: Vec<ImageMeta>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The caller's images, newest first.
#[utoipa::path(get, path = "/images", params(ListQuery), responses(
    (status = 200, body = ImageList),
    (status = 401, description = "Missing or invalid token"),
    (status = 422, description = "Bad `limit` or `cursor`"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<ImageList>> {
    let request = PageRequest::<Cursor>::parse(
        PAGE_SIZES,
        query.limit.map(i64::from),
        query.cursor.as_deref(),
    )
    .map_err(Error::Validation)?;
    let rows = db::list(&state.db, user.id, request.after, request.rows_to_fetch()).await?;
    let page = request.page(rows, |last| {
        Some(Cursor {
            created_at: last.created_at,
            id: last.id.parse().ok()?,
        })
    });
    Ok(AppJson(ImageList {
        items: page.items.into_iter().map(ImageMeta::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The caller's image `id`; anyone else's is [`Error::NotFound`], as if it did not exist.
async fn own_image(state: &AppState, user: &AuthUser, id: Uuid) -> Result<Arc<db::ImageRow>> {
    let row = state
        .rows
        .get_or_read(id, db::find(&state.db, id))
        .await?
        .ok_or(Error::NotFound)?;
    if row.owner_id.parse::<Uuid>().ok() != Some(user.id) {
        return Err(Error::NotFound);
    }
    Ok(row)
}

/// Images up to this size are read whole for a download; larger ones are streamed.
const WHOLE_READ_MAX_BYTES: i64 = 256 * 1024;

/// The image's bytes, with its `Content-Type` and `ETag`.
#[utoipa::path(get, path = "/images/{id}", params(
    ("id" = Uuid, Path),
    ("If-None-Match" = Option<String>, Header, description = "ETags of copies the client holds"),
), responses(
    (status = 200, description = "The image, in the type it was uploaded as",
        content(
            (inline(Binary) = "image/jpeg"),
            (inline(Binary) = "image/png"),
            (inline(Binary) = "image/webp"),
            (inline(Binary) = "image/gif"),
        ),
        headers(
            ("ETag" = String, description = "The SHA-256 of the bytes, quoted"),
            ("Cache-Control" = String, description = "`private`"),
        ),
    ),
    (status = 304, description = "`If-None-Match` matched the ETag", headers(
        ("ETag" = String, description = "The SHA-256 of the bytes, quoted"),
        ("Cache-Control" = String, description = "`private`"),
    )),
    (status = 401, description = "Missing or invalid token"),
    (status = 404, description = "No such image of yours"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id, image_id = %id))]
pub(super) async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let row = own_image(&state, &user, id).await?;
    let tag = etag::etag(&row.sha256);
    let validators = [
        (
            header::ETAG,
            HeaderValue::from_str(&tag).map_err(anyhow::Error::new)?,
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private")),
    ];
    let matched = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag::if_none_match(v, &tag));
    if matched {
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    let unreadable = |e: object_store::Error| {
        anyhow::Error::new(e).context(format!(
            "blob {} of an existing row is unreadable",
            BlobStore::blob_key(id)
        ))
    };
    // Small images (most of them) are read whole; large ones stream, so memory stays bounded.
    let body = if row.bytes <= WHOLE_READ_MAX_BYTES {
        Body::from(state.store.read(id).await.map_err(unreadable)?)
    } else {
        Body::from_stream(state.store.stream(id).await.map_err(unreadable)?)
    };
    let content_type = HeaderValue::from_str(&row.content_type).map_err(anyhow::Error::new)?;
    Ok((
        validators,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(row.bytes)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

/// The image's metadata.
#[utoipa::path(get, path = "/images/{id}/meta", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ImageMeta),
    (status = 401, description = "Missing or invalid token"),
    (status = 404, description = "No such image of yours"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id, image_id = %id))]
pub(super) async fn meta(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<AppJson<ImageMeta>> {
    Ok(AppJson(
        Arc::unwrap_or_clone(own_image(&state, &user, id).await?).into(),
    ))
}

/// Deletes the image: its row, then its blob (a blob left by a crash here is swept at start).
#[utoipa::path(delete, path = "/images/{id}", params(("id" = Uuid, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 401, description = "Missing or invalid token"),
    (status = 404, description = "No such image of yours"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id, image_id = %id))]
pub(super) async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode> {
    if !db::delete(&state.db, user.id, id).await? {
        return Err(Error::NotFound);
    }
    state.rows.forget(id);
    if let Err(e) = state.store.remove_blob(id).await {
        tracing::warn!(error = %e, "blob not deleted; the start-up sweep will remove it");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use common::imaging::ImageType;
    use serde_json::Value;

    use super::PAGE_SIZES;

    fn operation(method: &str, path: &str) -> Value {
        super::super::openapi()["paths"][path][method].clone()
    }

    #[test]
    fn the_list_takes_limit_and_cursor_in_the_query() {
        let parameters = operation("get", "/images")["parameters"].clone();
        let parameter = |name: &str| {
            parameters
                .as_array()
                .and_then(|all| all.iter().find(|p| p["name"] == name))
                .cloned()
                .unwrap_or_else(|| panic!("no parameter {name}"))
        };
        for name in ["limit", "cursor"] {
            assert_eq!(parameter(name)["in"], "query", "{name}");
            assert_eq!(parameter(name)["required"], false, "{name}");
        }
        let limit = parameter("limit")["schema"].clone();
        assert_eq!(limit["minimum"], 1);
        assert_eq!(limit["maximum"], PAGE_SIZES.max);
    }

    #[test]
    fn a_download_is_binary_in_each_accepted_image_type() {
        let content = operation("get", "/images/{id}")["responses"]["200"]["content"].clone();
        let documented = content.as_object().expect("content").len();
        assert_eq!(documented, ImageType::ALL.len());
        for kind in ImageType::ALL {
            let schema = &content[kind.mime()]["schema"];
            assert_eq!(schema["type"], "string", "{}", kind.mime());
            assert_eq!(schema["format"], "binary", "{}", kind.mime());
        }
    }

    #[test]
    fn every_operation_documents_its_problems_and_the_bearer_scheme() {
        let doc = super::super::openapi();
        assert_eq!(common::openapi::shortcomings(&doc), Vec::<String>::new());
        assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
        for (method, path, statuses) in [
            ("get", "/images", &["401", "422"][..]),
            ("get", "/images/{id}", &["401", "404"]),
            ("get", "/images/{id}/meta", &["401", "404"]),
            ("delete", "/images/{id}", &["401", "404"]),
            ("post", "/upload", &["400", "401", "413", "415", "422"]),
        ] {
            let responses = &operation(method, path)["responses"];
            for status in statuses {
                assert!(responses.get(status).is_some(), "{method} {path} {status}");
            }
        }
    }
}
