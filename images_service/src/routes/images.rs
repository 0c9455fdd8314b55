//! `GET /images`, `GET /images/{id}`, `GET /images/{id}/meta`, `DELETE /images/{id}`: a user's
//! own images only; anyone else's are answered 404 as if they did not exist.

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
pub(super) struct ListQuery {
    /// Page size, 1..=100 (default 20).
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

async fn own_image(state: &AppState, user: &AuthUser, id: Uuid) -> Result<db::ImageRow> {
    db::find(&state.db, user.id, id)
        .await?
        .ok_or(Error::NotFound)
}

/// Images up to this size are read whole for a download; larger ones are streamed.
const WHOLE_READ_MAX_BYTES: i64 = 256 * 1024;

/// The image's bytes, with its `Content-Type` and `ETag`.
#[utoipa::path(get, path = "/images/{id}", params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The image", content(
        ("image/jpeg"), ("image/png"), ("image/webp"), ("image/gif")
    )),
    (status = 304, description = "`If-None-Match` matched the ETag"),
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
    Ok(AppJson(own_image(&state, &user, id).await?.into()))
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
    if let Err(e) = state.store.remove(&BlobStore::blob_key(id)).await {
        tracing::warn!(error = %e, "blob not deleted; the start-up sweep will remove it");
    }
    Ok(StatusCode::NO_CONTENT)
}
