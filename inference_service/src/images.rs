//! Fetching an image's bytes from images_service with the caller's token, so images_service
//! decides ownership: its 404 stays a 404, its 401 a 401, and an unreachable service is a 503.

use std::time::Duration;

use axum::http::{header, StatusCode};
use bytes::{Bytes, BytesMut};
use common::imaging::Rejection;
use uuid::Uuid;

use crate::error::Error;

/// A client of images_service.
#[derive(Clone)]
pub struct ImagesClient {
    client: reqwest::Client,
    base_url: String,
    max_bytes: u64,
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

    /// The bytes of image `id`, fetched as the owner of `token`.
    #[tracing::instrument(skip_all, fields(%id))]
    pub async fn fetch(&self, id: Uuid, token: &str) -> Result<Bytes, Error> {
        let mut request = self
            .client
            .get(format!("{}/images/{id}", self.base_url))
            .bearer_auth(token);
        if let Some(request_id) = common::problem::current_request_id() {
            request = request.header("x-request-id", request_id);
        }
        let mut response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "images service unreachable");
            Error::ImagesUnavailable
        })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(Error::ImageNotFound),
            StatusCode::UNAUTHORIZED => return Err(Error::ImagesUnauthorized),
            status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                tracing::warn!(%status, "images service failed");
                return Err(Error::ImagesUnavailable);
            }
            status => {
                return Err(Error::Unexpected(anyhow::anyhow!(
                    "images service answered {status}"
                )));
            }
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if declared.is_some_and(|len: u64| len > self.max_bytes) {
            return Err(Rejection::TooLarge {
                limit: self.max_bytes,
            }
            .into());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            tracing::warn!(error = %e, "images service broke off the download");
            Error::ImagesUnavailable
        })? {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(Rejection::TooLarge {
                    limit: self.max_bytes,
                }
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}
