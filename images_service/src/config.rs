//! The service's settings, read from the environment and validated at start.

use common::{
    config::{database_url, var_or, ConfigError, DatabaseUrl, ImageLimits, ServerSettings},
    service::ServiceSettings,
};

/// Everything images_service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL`: `sqlite://…` (WAL) or `postgres://…`, with the password from
    /// `DATABASE_PASSWORD_FILE` when that is set.
    pub database_url: DatabaseUrl,
    /// `BLOB_STORE_URL`: `file://DIR` or `s3://BUCKET[/PREFIX]`.
    pub blob_store_url: String,
    /// `MAX_UPLOAD_BYTES`, `MAX_IMAGE_DIMENSION`, `MAX_IMAGE_PIXELS`, `MAX_DECODE_BYTES`: applied
    /// to every upload.
    pub limits: ImageLimits,
    /// `BLOB_CACHE_BYTES`: memory for recently downloaded small images (0 turns it off).
    pub blob_cache_bytes: u64,
}

/// The default of `BLOB_CACHE_BYTES`: 64 MiB, some hundreds of typical small images.
pub const DEFAULT_BLOB_CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl ServiceSettings for Settings {
    const DEFAULT_LISTEN_ADDR: &'static str = "127.0.0.1:8201";
    const DEFAULT_INSTANCE_NAME: &'static str = "images";

    fn from_env() -> Result<Self, ConfigError> {
        let limits = ImageLimits::from_env()?;
        let settings = Self {
            server: Self::server_from_env()?,
            database_url: database_url("sqlite://data/images.db")?,
            blob_store_url: var_or("BLOB_STORE_URL", "file://data/blobs".to_owned())?,
            limits,
            blob_cache_bytes: var_or("BLOB_CACHE_BYTES", DEFAULT_BLOB_CACHE_BYTES)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn server(&self) -> &ServerSettings {
        &self.server
    }
}

impl Settings {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "expected `sqlite://…` or `postgres://…`",
            ));
        }
        if !(self.blob_store_url.starts_with("file://") || self.blob_store_url.starts_with("s3://"))
        {
            return Err(ConfigError::new(
                "BLOB_STORE_URL",
                "expected `file://DIR` or `s3://BUCKET`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_upload_limit_is_twenty_mebibytes() {
        assert_eq!(ImageLimits::default().max_upload_bytes, 20_971_520);
    }
}
