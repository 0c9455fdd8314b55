//! `POST /upload`: stream the `file` field into the blob store while hashing and screening it
//! (size, type from the first bytes, completeness from the last), decode it fully under limits,
//! commit the blob, then write the row. The body is never held whole in memory and reading stops
//! at the size limit. The checks are `common::imaging`'s, the same as inference_service's.

use std::io::BufReader;

use axum::{
    extract::{
        multipart::{Field, MultipartRejection},
        DefaultBodyLimit, Multipart, State,
    },
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use bytes::Bytes;
use common::{
    auth::AuthUser,
    config::ImageLimits,
    imaging::{self, ImageType, Screening},
    openapi::FileUpload,
    problem::AppJson,
};
use object_store::{path::Path, WriteMultipart};
use ring::digest;
use uuid::Uuid;

use super::ImageMeta;
use crate::{
    db::{self, ImageRow},
    error::Result,
    state::AppState,
    storage::BlobStore,
    upload_form,
};

/// Room for multipart boundaries, part headers and small extra fields beyond the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Parts of one upload being written to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

pub(super) fn router(limits: ImageLimits) -> Router<AppState> {
    let body_limit = usize::try_from(limits.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD))
        .unwrap_or(usize::MAX);
    Router::new().route(
        "/upload",
        post(upload).layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// Uploads an image. The same bytes uploaded again by the same user return the existing image.
#[utoipa::path(post, path = "/upload", request_body(content = FileUpload, content_type = "multipart/form-data"), responses(
    (status = 201, description = "Stored", body = ImageMeta),
    (status = 200, description = "Already uploaded by you: the existing image", body = ImageMeta),
    (status = 400, description = "A multipart/form-data body without a boundary, or one that cannot be read"),
    (status = 401, description = "Missing or invalid token"),
    (status = 413, description = "Larger than MAX_UPLOAD_BYTES"),
    (status = 415, description = "Not a multipart/form-data body, or a file that is not a JPEG, PNG, WebP or GIF"),
    (status = 422, description = "No `file`, an empty file, a corrupt image, or too many pixels"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id, image_id))]
pub(super) async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, AppJson<ImageMeta>)> {
    let outcome = receive_and_store(&state, &user, &headers, multipart).await;
    match &outcome {
        Ok((status, meta)) => tracing::info!(
            status = status.as_u16(),
            bytes = meta.0.bytes,
            "upload accepted"
        ),
        Err(error) => {
            if let Some(reason) = error.rejection_reason() {
                state.metrics.rejections.with_label_values(&[reason]).inc();
                tracing::info!(reason, "upload refused");
            }
        }
    }
    outcome
}

async fn receive_and_store(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, AppJson<ImageMeta>)> {
    let mut multipart = upload_form::form(multipart, headers)?;
    let limit = state.limits.max_upload_bytes;
    let received = upload_form::read_file_field(&mut multipart, limit, async |field| {
        receive(state, field).await
    })
    .await?;
    // Nothing after the file is read: the answer does not depend on it.
    drop(multipart);
    // Deleted whatever happens next, a request cancelled while the image is checked included.
    let temporary = state.store.temporary(received.key.clone());
    let outcome = store(state, user, received).await;
    temporary.remove().await;
    outcome.map(|(status, row)| (status, AppJson(row.into())))
}

/// A file fully written to a temporary key.
struct Received {
    key: Path,
    kind: ImageType,
    sha256: String,
    bytes: u64,
}

/// The state of one streamed file.
struct Incoming {
    key: Path,
    limit: u64,
    /// SHA-256 of the bytes so far; ring's assembly is about 1.6× the `sha2` crate's on CPUs
    /// without SHA extensions, and hashing is the largest cost of an upload there.
    hasher: digest::Context,
    screening: Screening,
    /// Chunks that arrived before the type was known.
    pending: Vec<Bytes>,
    writer: Option<WriteMultipart>,
}

impl Incoming {
    fn new(limits: &ImageLimits) -> Self {
        Self {
            key: BlobStore::temporary_key(),
            limit: limits.max_upload_bytes,
            hasher: digest::Context::new(&digest::SHA256),
            screening: Screening::new(limits),
            pending: Vec::new(),
            writer: None,
        }
    }

    async fn consume(&mut self, state: &AppState, field: &mut Field<'_>) -> Result<()> {
        while let Some(chunk) =
            upload_form::next_chunk(field, &mut self.screening, self.limit).await?
        {
            self.hasher.update(&chunk);
            match &mut self.writer {
                Some(writer) => {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    writer.put(chunk);
                }
                None => {
                    self.pending.push(chunk);
                    // Nothing is written before the first bytes show an accepted type.
                    if self.screening.kind()?.is_some() {
                        self.start(state).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens the temporary blob with what arrived so far.
    async fn start(&mut self, state: &AppState) -> Result<()> {
        let mut writer = state.store.begin(&self.key).await?;
        for chunk in self.pending.drain(..) {
            writer.put(chunk);
        }
        self.writer = Some(writer);
        Ok(())
    }

    async fn finish(mut self, state: &AppState) -> Result<Received> {
        let kind = match self.screening.finish() {
            Ok(kind) => kind,
            Err(rejection) => {
                self.abort().await;
                return Err(rejection.into());
            }
        };
        if self.writer.is_none() {
            // A file shorter than the bytes needed to sniff it.
            self.start(state).await?;
        }
        if let Some(writer) = self.writer.take() {
            writer.finish().await?;
        }
        Ok(Received {
            key: self.key,
            kind,
            sha256: hex::encode(self.hasher.finish()),
            bytes: self.screening.len(),
        })
    }

    async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, "cannot abort a partial upload; the start-up sweep will remove it");
            }
        }
    }
}

#[tracing::instrument(skip_all)]
async fn receive(state: &AppState, mut field: Field<'_>) -> Result<Received> {
    let mut incoming = Incoming::new(&state.limits);
    match incoming.consume(state, &mut field).await {
        Ok(()) => incoming.finish(state).await,
        Err(error) => {
            incoming.abort().await;
            Err(error)
        }
    }
}

/// Deduplicates, decodes, commits the blob, then writes the row.
async fn store(
    state: &AppState,
    user: &AuthUser,
    received: Received,
) -> Result<(StatusCode, ImageRow)> {
    if let Some(existing) = db::find_by_digest(&state.db, user.id, &received.sha256).await? {
        state.metrics.deduplicated.inc();
        tracing::Span::current().record("image_id", existing.id.as_str());
        return Ok((StatusCode::OK, existing));
    }
    let (width, height) = decode(state, &received).await?;
    let id = Uuid::now_v7();
    tracing::Span::current().record("image_id", id.to_string());
    state.store.commit(&received.key, id).await?;
    let row = ImageRow {
        id: id.to_string(),
        owner_id: user.id.to_string(),
        sha256: received.sha256,
        content_type: received.kind.mime().to_owned(),
        width: i64::from(width),
        height: i64::from(height),
        bytes: i64::try_from(received.bytes).map_err(anyhow::Error::new)?,
        created_at: common::timestamp::Timestamp::now(),
    };
    match db::insert(&state.db, &row).await {
        Ok(()) => {
            state.metrics.uploads.inc();
            state.metrics.upload_bytes.inc_by(received.bytes);
            Ok((StatusCode::CREATED, row))
        }
        Err(error) => {
            state.store.remove_blob(id).await?;
            if !db::is_duplicate_digest(&error) {
                return Err(error.into());
            }
            // The same bytes finished uploading concurrently: answer with that image.
            let existing = db::find_by_digest(&state.db, user.id, &row.sha256)
                .await?
                .ok_or(error)?;
            state.metrics.deduplicated.inc();
            Ok((StatusCode::OK, existing))
        }
    }
}

/// Validates the temporary blob on the blocking pool, at most a bounded number at once.
async fn decode(state: &AppState, received: &Received) -> Result<(u32, u32)> {
    let file = state.store.open_file(&received.key).await?;
    let permit = state
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(anyhow::Error::new)?;
    let (kind, limits, span) = (received.kind, state.limits, tracing::Span::current());
    let decoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        span.in_scope(|| imaging::validate(BufReader::new(file), kind, &limits))
    })
    .await
    .map_err(anyhow::Error::new)?;
    Ok(decoded?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_upload_is_a_multipart_form_with_a_binary_file() {
        let doc = super::super::openapi();
        let body = &doc["paths"]["/upload"]["post"]["requestBody"];
        assert_eq!(body["required"], true);
        let schema = &body["content"]["multipart/form-data"]["schema"]["$ref"];
        let name = schema
            .as_str()
            .and_then(|s| s.strip_prefix("#/components/schemas/"))
            .expect("a schema reference");
        let form = &doc["components"]["schemas"][name];
        assert_eq!(form["required"], serde_json::json!(["file"]));
        assert_eq!(form["properties"]["file"]["type"], "string");
        assert_eq!(form["properties"]["file"]["format"], "binary");
    }
}
