//! The upload form as it arrives: a multipart/form-data body whose `file` field is found and read
//! chunk by chunk, each chunk screened ([`Screening`]) before it goes any further. The handler
//! (`POST /upload`) stores what these functions hand it; they are public so the parsing can be
//! driven with arbitrary bodies on its own (the fuzz targets do), without a store or a database.

use axum::{
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        Multipart,
    },
    http::{header, HeaderMap, StatusCode},
};
use bytes::Bytes;
use common::imaging::{Rejection, Screening};

use crate::error::{Error, Result};

/// Whether the request says its body is multipart/form-data (with or without a usable boundary).
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The form, or why the body is none: a multipart/form-data body without a usable boundary is
/// [`Error::BadMultipart`], any other body [`Error::NotMultipart`].
pub fn form(
    multipart: std::result::Result<Multipart, MultipartRejection>,
    headers: &HeaderMap,
) -> Result<Multipart> {
    multipart.map_err(|e| {
        if is_multipart(headers) {
            Error::BadMultipart(format!(
                "The multipart/form-data body has no valid boundary ({}).",
                e.body_text()
            ))
        } else {
            Error::NotMultipart
        }
    })
}

/// What `read` makes of the form's `file` field; the fields before it are skipped, those after
/// it are never read. A form without one is [`Error::MissingFile`]; a body past `limit` bytes is
/// [`Rejection::TooLarge`].
pub async fn read_file_field<T>(
    multipart: &mut Multipart,
    limit: u64,
    read: impl AsyncFnOnce(Field<'_>) -> Result<T>,
) -> Result<T> {
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(&e, limit))?;
        let Some(field) = field else {
            return Err(Error::MissingFile);
        };
        if field.name() == Some("file") {
            return read(field).await;
        }
    }
}

/// The file's next chunk (`None` at its end), pushed through `screening` first: refused as soon
/// as the file passes the size limit (`limit`, the screening's own) or its first bytes show a type
/// that is not accepted.
pub async fn next_chunk(
    field: &mut Field<'_>,
    screening: &mut Screening,
    limit: u64,
) -> Result<Option<Bytes>> {
    let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(&e, limit))?
    else {
        return Ok(None);
    };
    screening.push(&chunk)?;
    screening.kind()?;
    Ok(Some(chunk))
}

fn multipart_error(error: &MultipartError, limit: u64) -> Error {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Rejection::TooLarge { limit }.into()
    } else {
        Error::BadMultipart(format!(
            "The multipart body could not be read: {}",
            error.body_text()
        ))
    }
}
