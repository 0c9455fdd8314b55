//! Settings shared by every service, read from the environment.
//!
//! Each service has its own typed settings struct built with [`var`] / [`var_or`], so a bad value
//! fails at start with a message that names the variable.

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

/// A configuration value that is missing or cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// Reads `name` and parses it; `Ok(None)` when unset or empty.
pub fn var<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::new(name, format!("cannot parse {raw:?}: {e}"))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "is not valid UTF-8")),
    }
}

/// Reads `name` and parses it, falling back to `default` when unset.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(var(name)?.unwrap_or(default))
}

/// Reads a duration given in whole seconds.
pub fn secs_or(name: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(var_or(name, default)?))
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("expected `json` or `pretty`, got `{other}`")),
        }
    }
}

/// Settings every service reads the same way.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `LISTEN_ADDR`: where the HTTP server binds (port 0 picks a free port).
    pub listen_addr: SocketAddr,
    /// `INSTANCE_NAME`: shown in `X-Served-By` and in metric labels, e.g. `users-2`.
    pub instance_name: String,
    /// `LOG_FORMAT`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// `MAX_IN_FLIGHT`: requests handled at once before new ones are shed with 503.
    pub max_in_flight: usize,
    /// `REQUEST_TIMEOUT_SECS`: a request taking longer is answered 503.
    pub request_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
}

impl ServerSettings {
    /// Reads the shared settings; `default_addr` and `default_name` are the service's own defaults.
    pub fn from_env(default_addr: &str, default_name: &str) -> Result<Self, ConfigError> {
        let default_addr: SocketAddr = default_addr
            .parse()
            .map_err(|e| ConfigError::new("LISTEN_ADDR", format!("{e}")))?;
        let settings = Self {
            listen_addr: var_or("LISTEN_ADDR", default_addr)?,
            instance_name: var_or("INSTANCE_NAME", default_name.to_owned())?,
            log_format: var_or("LOG_FORMAT", LogFormat::Pretty)?,
            max_in_flight: var_or("MAX_IN_FLIGHT", 256)?,
            request_timeout: secs_or("REQUEST_TIMEOUT_SECS", 30)?,
            shutdown_grace: secs_or("SHUTDOWN_GRACE_SECS", 10)?,
        };
        if settings.max_in_flight == 0 {
            return Err(ConfigError::new("MAX_IN_FLIGHT", "must be at least 1"));
        }
        if settings.instance_name.is_empty()
            || !settings
                .instance_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::new(
                "INSTANCE_NAME",
                "use letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(settings)
    }
}

/// Limits on image bodies, shared by every service that accepts images (the same variables and
/// defaults everywhere, so an image images_service stores is one inference_service accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// `MAX_UPLOAD_BYTES`: larger bodies are refused with 413 while they stream in.
    pub max_upload_bytes: u64,
    /// `MAX_IMAGE_DIMENSION`: a width or height beyond it is refused with 422.
    pub max_image_dimension: u32,
    /// `MAX_DECODE_BYTES`: memory one decode may allocate.
    pub max_decode_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            max_image_dimension: 16_384,
            max_decode_bytes: 256 * 1024 * 1024,
        }
    }
}

impl ImageLimits {
    /// Reads `MAX_UPLOAD_BYTES`, `MAX_IMAGE_DIMENSION` and `MAX_DECODE_BYTES`; each must be at least 1.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let limits = Self {
            max_upload_bytes: var_or("MAX_UPLOAD_BYTES", defaults.max_upload_bytes)?,
            max_image_dimension: var_or("MAX_IMAGE_DIMENSION", defaults.max_image_dimension)?,
            max_decode_bytes: var_or("MAX_DECODE_BYTES", defaults.max_decode_bytes)?,
        };
        limits.validate()?;
        Ok(limits)
    }

    /// Refuses zero limits, naming the variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("MAX_UPLOAD_BYTES", self.max_upload_bytes),
            ("MAX_IMAGE_DIMENSION", u64::from(self.max_image_dimension)),
            ("MAX_DECODE_BYTES", self.max_decode_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses_known_names_only() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = ConfigError::new("MAX_IN_FLIGHT", "cannot parse \"x\"");
        assert!(err.to_string().contains("MAX_IN_FLIGHT"));
    }
}
