//! `POST /upload`: stream the `file` field into the blob store while hashing and counting it,
//! recognise its type from its first bytes, decode it fully under limits, commit the blob, then
//! write the row. The body is never held whole in memory and reading stops at the size limit.

use std::io::BufReader;

use axum::{
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        DefaultBodyLimit, Multipart, State,
    },
    http::StatusCode,
    routing::post,
    Router,
};
use bytes::Bytes;
use common::{auth::AuthUser, problem::AppJson};
use object_store::{path::Path, WriteMultipart};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ImageMeta;
use crate::{
    config::UploadLimits,
    db::{self, ImageRow},
    domain::{self, image_type::SNIFF_LEN, DecodeError, ImageType},
    error::{Error, Result},
    state::AppState,
    storage::BlobStore,
};

/// Room for multipart boundaries, part headers and small extra fields beyond the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Bytes kept from the end of the file to check its end marker.
const TAIL_LEN: usize = 64;
/// Parts of one upload being written to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

pub(super) fn router(limits: UploadLimits) -> Router<AppState> {
    let body_limit = usize::try_from(limits.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD))
        .unwrap_or(usize::MAX);
    Router::new().route(
        "/upload",
        post(upload).layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct UploadForm {
    /// The image: JPEG, PNG, WebP or GIF (decided by its content).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads an image. The same bytes uploaded again by the same user return the existing image.
#[utoipa::path(post, path = "/upload", request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, description = "Stored", body = ImageMeta),
    (status = 200, description = "Already uploaded by you: the existing image", body = ImageMeta),
    (status = 400, description = "Not a multipart/form-data body"),
    (status = 401, description = "Missing or invalid token"),
    (status = 413, description = "Larger than MAX_UPLOAD_BYTES"),
    (status = 415, description = "Not a JPEG, PNG, WebP or GIF"),
    (status = 422, description = "No `file`, an empty file, a corrupt image, or too many pixels"),
))]
#[tracing::instrument(skip_all, fields(user_id = %user.id, image_id))]
pub(super) async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, AppJson<ImageMeta>)> {
    let outcome = receive_and_store(&state, &user, multipart).await;
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
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, AppJson<ImageMeta>)> {
    let mut multipart = multipart.map_err(|e| {
        Error::BadMultipart(format!(
            "Send the image as multipart/form-data with a `file` field ({}).",
            e.body_text()
        ))
    })?;
    let limit = state.limits.max_upload_bytes;
    let received = loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(&e, limit))?;
        let Some(field) = field else {
            return Err(Error::MissingFile);
        };
        if field.name() == Some("file") {
            break receive(state, field, limit).await?;
        }
    };
    // Nothing after the file is read: the answer does not depend on it.
    drop(multipart);
    let key = received.key.clone();
    let outcome = store(state, user, received).await;
    if let Err(e) = state.store.remove(&key).await {
        tracing::warn!(error = %e, %key, "temporary blob not removed; the start-up sweep will");
    }
    outcome.map(|(status, row)| (status, AppJson(row.into())))
}

fn multipart_error(error: &MultipartError, limit: u64) -> Error {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge { limit }
    } else {
        Error::BadMultipart(format!(
            "The multipart body could not be read: {}",
            error.body_text()
        ))
    }
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
    hasher: Sha256,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
    /// Chunks that arrived before the type was known.
    pending: Vec<Bytes>,
    writer: Option<(WriteMultipart, ImageType)>,
}

impl Incoming {
    fn new(limit: u64) -> Self {
        Self {
            key: BlobStore::temporary_key(),
            limit,
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_LEN),
            tail: Vec::with_capacity(TAIL_LEN * 2),
            total: 0,
            pending: Vec::new(),
            writer: None,
        }
    }

    async fn consume(&mut self, state: &AppState, field: &mut Field<'_>) -> Result<()> {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(&e, self.limit))?
        {
            self.total += chunk.len() as u64;
            if self.total > self.limit {
                return Err(Error::TooLarge { limit: self.limit });
            }
            self.hasher.update(&chunk);
            self.remember_edges(&chunk);
            match &mut self.writer {
                Some((writer, _)) => {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    writer.put(chunk);
                }
                None => {
                    self.pending.push(chunk);
                    if self.head.len() >= SNIFF_LEN {
                        self.start(state).await?;
                    }
                }
            }
        }
        if self.total == 0 {
            return Err(Error::EmptyFile);
        }
        if self.writer.is_none() {
            self.start(state).await?;
        }
        Ok(())
    }

    fn remember_edges(&mut self, chunk: &[u8]) {
        let wanted = SNIFF_LEN.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..wanted]);
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL_LEN)..]);
        if self.tail.len() > TAIL_LEN {
            self.tail.drain(..self.tail.len() - TAIL_LEN);
        }
    }

    /// Decides the type from the first bytes and opens the temporary blob.
    async fn start(&mut self, state: &AppState) -> Result<()> {
        let kind = ImageType::sniff(&self.head).ok_or(Error::UnsupportedType)?;
        let mut writer = state.store.begin(&self.key).await?;
        for chunk in self.pending.drain(..) {
            writer.put(chunk);
        }
        self.writer = Some((writer, kind));
        Ok(())
    }

    async fn finish(mut self) -> Result<Received> {
        let Some((writer, kind)) = self.writer.take() else {
            return Err(Error::EmptyFile);
        };
        if !kind.is_complete(&self.head, &self.tail, self.total) {
            let _ = writer.abort().await;
            return Err(Error::Corrupt {
                kind: kind.mime(),
                reason: "the file ends early (truncated)".into(),
            });
        }
        writer.finish().await?;
        Ok(Received {
            key: self.key,
            kind,
            sha256: hex::encode(self.hasher.finalize()),
            bytes: self.total,
        })
    }

    async fn abort(mut self) {
        if let Some((writer, _)) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, "cannot abort a partial upload; the start-up sweep will remove it");
            }
        }
    }
}

#[tracing::instrument(skip_all)]
async fn receive(state: &AppState, mut field: Field<'_>, limit: u64) -> Result<Received> {
    let mut incoming = Incoming::new(limit);
    match incoming.consume(state, &mut field).await {
        Ok(()) => incoming.finish().await,
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
    let dimensions = decode(state, &received).await?;
    let id = Uuid::now_v7();
    tracing::Span::current().record("image_id", id.to_string());
    state.store.commit(&received.key, id).await?;
    let row = ImageRow {
        id: id.to_string(),
        owner_id: user.id.to_string(),
        sha256: received.sha256,
        content_type: received.kind.mime().to_owned(),
        width: i64::from(dimensions.width),
        height: i64::from(dimensions.height),
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
            state.store.remove(&BlobStore::blob_key(id)).await?;
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

/// Decodes the temporary blob on the blocking pool, at most a bounded number at once.
async fn decode(state: &AppState, received: &Received) -> Result<domain::Dimensions> {
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
        span.in_scope(|| domain::inspect(BufReader::new(file), kind, &limits))
    })
    .await
    .map_err(anyhow::Error::new)?;
    decoded.map_err(|error| match error {
        DecodeError::TooManyPixels(reason) => Error::TooManyPixels(reason),
        DecodeError::Corrupt(reason) => Error::Corrupt {
            kind: kind.mime(),
            reason,
        },
    })
}
