//! Reading an image from images_service with the caller's token, so images_service decides
//! ownership: its 404 stays a 404, its 401 a 401, and an unreachable service is a 503.
//!
//! The metadata comes first (a few hundred bytes: the SHA-256 the prediction cache is keyed by,
//! and the size), so a cached prediction, a full queue or an image over the size limit costs no
//! download. The bytes are then read into a buffer of the announced size, never past the limit.

use std::time::Duration;

use axum::http::{header, StatusCode};
use bytes::{Bytes, BytesMut};
use common::imaging::Rejection;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::Error;

/// A client of images_service.
#[derive(Clone)]
pub struct ImagesClient {
    client: reqwest::Client,
    base_url: String,
    max_bytes: u64,
}

/// What images_service says of a stored image, as far as a prediction needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredImage {
    /// The SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub bytes: u64,
}

/// The part of images_service's `ImageMeta` read here.
#[derive(Deserialize)]
struct MetaBody {
    sha256: String,
    bytes: u64,
}

impl ImagesClient {
    /// A client for `base_url` that refuses bodies over `max_bytes`.
    pub fn new(base_url: &str, max_bytes: u64) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_bytes,
        })
    }

    /// The SHA-256 and size of image `id`, asked as the owner of `token`. An image over the size
    /// limit is refused here (413), before any of its bytes is fetched.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn meta(&self, id: Uuid, token: &str) -> Result<StoredImage, Error> {
        let response = self.get(&format!("/images/{id}/meta"), token).await?;
        let body: MetaBody = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "images service sent unreadable metadata");
            Error::ImagesUnavailable
        })?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&body.sha256, &mut sha256).map_err(|e| {
            Error::Unexpected(anyhow::anyhow!(
                "images service sent a malformed sha256: {e}"
            ))
        })?;
        self.within_limit(body.bytes)?;
        Ok(StoredImage {
            sha256,
            bytes: body.bytes,
        })
    }

    /// The bytes of image `id`, fetched as the owner of `token`: read into one buffer of the
    /// announced size, refused (413) as soon as they pass the limit.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn fetch(&self, id: Uuid, token: &str) -> Result<Bytes, Error> {
        let mut response = self.get(&format!("/images/{id}"), token).await?;
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(declared) = declared {
            self.within_limit(declared)?;
        }
        // One allocation of the right size: growing by doubling would hold up to twice the image.
        let capacity = declared.unwrap_or(0).min(self.max_bytes);
        let mut body = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            tracing::warn!(error = %e, "images service broke off the download");
            Error::ImagesUnavailable
        })? {
            self.within_limit((body.len() + chunk.len()) as u64)?;
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn within_limit(&self, bytes: u64) -> Result<(), Error> {
        if bytes > self.max_bytes {
            return Err(Rejection::TooLarge {
                limit: self.max_bytes,
            }
            .into());
        }
        Ok(())
    }

    /// A successful answer to `GET path`, or the error its status means.
    async fn get(&self, path: &str, token: &str) -> Result<reqwest::Response, Error> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(token);
        if let Some(request_id) = common::problem::current_request_id() {
            request = request.header("x-request-id", request_id);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "images service unreachable");
            Error::ImagesUnavailable
        })?;
        match response.status() {
            StatusCode::OK => Ok(response),
            StatusCode::NOT_FOUND => Err(Error::ImageNotFound),
            StatusCode::UNAUTHORIZED => Err(Error::ImagesUnauthorized),
            status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                tracing::warn!(%status, "images service failed");
                Err(Error::ImagesUnavailable)
            }
            status => Err(Error::Unexpected(anyhow::anyhow!(
                "images service answered {status}"
            ))),
        }
    }
}
