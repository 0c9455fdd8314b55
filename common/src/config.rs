//! Settings shared by every service, read from the environment.
//!
//! Each service has its own typed settings struct built with [`var`] / [`var_or`], so a bad value
//! fails at start with a message that names the variable.

use std::{
    fmt::Display,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

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

const PASSWORD_FILE: &str = "DATABASE_PASSWORD_FILE";

/// Reads `DATABASE_URL` (`default` when unset) and, when `DATABASE_PASSWORD_FILE` names a file,
/// puts the password read from it into the URL, so a Docker secret can carry the password.
///
/// Trailing line breaks in the file are ignored; any other character is part of the password and
/// is percent-encoded. The file applies to `postgres://` / `postgresql://` URLs only. With
/// `DATABASE_PASSWORD_FILE` unset or empty, the URL is returned as given.
pub fn database_url(default: &str) -> Result<DatabaseUrl, ConfigError> {
    let url: String = var_or("DATABASE_URL", default.to_owned())?;
    let password_file: Option<PathBuf> = var(PASSWORD_FILE)?;
    with_password_file(&url, password_file.as_deref()).map(DatabaseUrl)
}

/// A database URL, which may hold a password: it dereferences to the whole URL, and its `Debug`
/// output (what a `{settings:?}` log line shows) has the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// The URL with its password replaced, safe for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

fn with_password_file(url: &str, password_file: Option<&Path>) -> Result<String, ConfigError> {
    let Some(path) = password_file else {
        return Ok(url.to_owned());
    };
    // The scheme is checked before anything is read, so a SQLite URL fails the same way whether
    // or not the file exists.
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    if !(scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")) {
        return Err(ConfigError::new(
            PASSWORD_FILE,
            "applies to PostgreSQL URLs (postgres://USER@HOST/DB) only, but DATABASE_URL is not one",
        ));
    }
    let contents = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            PASSWORD_FILE,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    // `echo secret > file` and most editors end the file with a line break that is no part of it.
    let password = contents.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(ConfigError::new(
            PASSWORD_FILE,
            format!("{} holds no password", path.display()),
        ));
    }
    // Neither the URL nor the parse error goes into a message: the URL may hold a password.
    let mut parsed = url::Url::parse(url)
        .map_err(|e| ConfigError::new("DATABASE_URL", format!("is not a valid URL: {e}")))?;
    if parsed.query_pairs().any(|(key, _)| key == "password") {
        return Err(ConfigError::new(
            PASSWORD_FILE,
            "DATABASE_URL already has a `password` query parameter, which would win; remove it",
        ));
    }
    // `set_password` leaves `%` as it is, so the password is encoded here, completely.
    parsed
        .set_password(Some(&percent_encode(password)))
        .map_err(|()| {
            ConfigError::new(
                PASSWORD_FILE,
                "DATABASE_URL has no host to attach the password to (postgres://USER@HOST/DB)",
            )
        })?;
    Ok(parsed.into())
}

/// Percent-encodes every byte except RFC 3986's unreserved characters.
fn percent_encode(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
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

/// How slowly a request body may arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    /// `REQUEST_BODY_GRACE_SECS`: time a body gets before its rate counts.
    pub grace: Duration,
    /// `REQUEST_BODY_MIN_KIB_PER_SEC`: the average rate a body must keep up after the grace.
    pub min_bytes_per_sec: u64,
}

impl Default for BodyRate {
    /// 3 s of grace, then at least 8 KiB/s on average.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3),
            min_bytes_per_sec: 8 * 1024,
        }
    }
}

impl BodyRate {
    fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let grace = secs_or("REQUEST_BODY_GRACE_SECS", defaults.grace.as_secs())?;
        if grace.is_zero() {
            return Err(ConfigError::new(
                "REQUEST_BODY_GRACE_SECS",
                "must be at least 1",
            ));
        }
        let kib: u64 = var_or(
            "REQUEST_BODY_MIN_KIB_PER_SEC",
            defaults.min_bytes_per_sec / 1024,
        )?;
        if kib == 0 {
            // 0 would let a body trickle for as long as the request timeout.
            return Err(ConfigError::new(
                "REQUEST_BODY_MIN_KIB_PER_SEC",
                "must be at least 1",
            ));
        }
        Ok(Self {
            grace,
            min_bytes_per_sec: kib.saturating_mul(1024),
        })
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
    /// `REQUEST_HEADER_TIMEOUT_SECS`: a connection whose request headers are not complete
    /// within this time is closed.
    pub header_timeout: Duration,
    /// How slowly a request body may arrive before it is cut with 408.
    pub body_rate: BodyRate,
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
            header_timeout: secs_or("REQUEST_HEADER_TIMEOUT_SECS", 10)?,
            body_rate: BodyRate::from_env()?,
        };
        if settings.max_in_flight == 0 {
            return Err(ConfigError::new("MAX_IN_FLIGHT", "must be at least 1"));
        }
        if settings.header_timeout.is_zero() {
            return Err(ConfigError::new(
                "REQUEST_HEADER_TIMEOUT_SECS",
                "must be at least 1: without it a client could hold a connection forever",
            ));
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
    /// `MAX_IMAGE_PIXELS`: width × height beyond it is refused with 422, from the header, before
    /// any pixel is decoded. A few hundred kilobytes of PNG can declare a hundred megapixels.
    pub max_image_pixels: u64,
    /// `MAX_DECODE_BYTES`: memory one decode may allocate.
    pub max_decode_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            max_image_dimension: 16_384,
            // 40 megapixels: larger than any phone or most cameras take, 120 MB as RGB.
            max_image_pixels: 40_000_000,
            max_decode_bytes: 256 * 1024 * 1024,
        }
    }
}

impl ImageLimits {
    /// Reads `MAX_UPLOAD_BYTES`, `MAX_IMAGE_DIMENSION`, `MAX_IMAGE_PIXELS` and `MAX_DECODE_BYTES`;
    /// each must be at least 1.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let limits = Self {
            max_upload_bytes: var_or("MAX_UPLOAD_BYTES", defaults.max_upload_bytes)?,
            max_image_dimension: var_or("MAX_IMAGE_DIMENSION", defaults.max_image_dimension)?,
            max_image_pixels: var_or("MAX_IMAGE_PIXELS", defaults.max_image_pixels)?,
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
            ("MAX_IMAGE_PIXELS", self.max_image_pixels),
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
    fn a_zero_pixel_limit_names_its_variable() {
        let limits = ImageLimits {
            max_image_pixels: 0,
            ..ImageLimits::default()
        };
        assert_eq!(
            limits.validate().expect_err("zero").name,
            "MAX_IMAGE_PIXELS"
        );
    }

    #[test]
    fn log_format_parses_known_names_only() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn a_bad_value_names_its_variable_and_the_value() {
        // A variable no other test reads, so setting it disturbs none of them.
        const NAME: &str = "COMMON_CONFIG_TEST_UNPARSABLE";
        std::env::set_var(NAME, "many");
        let err = var_or::<usize>(NAME, 1).expect_err("`many` is not a number");
        std::env::remove_var(NAME);
        assert_eq!(err.name, NAME);
        let message = err.to_string();
        assert!(
            message.contains(NAME) && message.contains("\"many\""),
            "{message}"
        );
    }

    #[test]
    fn an_unset_or_blank_variable_falls_back_to_the_default() {
        const NAME: &str = "COMMON_CONFIG_TEST_BLANK";
        assert_eq!(var_or::<usize>(NAME, 7).expect("unset"), 7);
        std::env::set_var(NAME, "  ");
        let blank = var_or::<usize>(NAME, 7);
        std::env::remove_var(NAME);
        assert_eq!(blank.expect("blank"), 7);
    }

    /// A password file under the temporary directory, removed on drop.
    struct PasswordFile(PathBuf);

    impl PasswordFile {
        fn new(test: &str, contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "common-config-{}-{test}.password",
                std::process::id()
            ));
            std::fs::write(&path, contents).expect("write the password file");
            Self(path)
        }
    }

    impl Drop for PasswordFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// The password as a PostgreSQL driver reads it back from the URL.
    fn password_of(url: &str) -> String {
        let parsed = url::Url::parse(url).expect("a valid URL");
        let encoded = parsed.password().expect("a password").as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < encoded.len() {
            if encoded[i] == b'%' {
                let hex = std::str::from_utf8(&encoded[i + 1..i + 3]).expect("ASCII");
                decoded.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                i += 3;
            } else {
                decoded.push(encoded[i]);
                i += 1;
            }
        }
        String::from_utf8(decoded).expect("UTF-8")
    }

    #[test]
    fn without_a_password_file_the_url_is_used_as_given() {
        for url in [
            "sqlite://data/users.db",
            "postgres://forgettable:from-env@db:5432/users",
        ] {
            assert_eq!(with_password_file(url, None).expect("unchanged"), url);
        }
    }

    #[test]
    fn the_password_file_fills_in_the_password_without_its_line_break() {
        let file = PasswordFile::new("line-break", "s3cret\n");
        let url = with_password_file("postgres://forgettable@db:5432/users", Some(&file.0))
            .expect("password inserted");
        assert_eq!(url, "postgres://forgettable:s3cret@db:5432/users");
    }

    #[test]
    fn url_special_characters_in_the_password_are_percent_encoded() {
        let password = "p@ss/w%rd:#?+ é";
        let file = PasswordFile::new("special", &format!("{password}\r\n"));
        let url = with_password_file(
            "postgres://forgettable@db/users?sslmode=disable",
            Some(&file.0),
        )
        .expect("password inserted");
        assert_eq!(
            url,
            "postgres://forgettable:p%40ss%2Fw%25rd%3A%23%3F%2B%20%C3%A9@db/users?sslmode=disable"
        );
        assert_eq!(password_of(&url), password);
    }

    #[test]
    fn the_password_file_replaces_a_password_already_in_the_url() {
        let file = PasswordFile::new("replace", "from-file\n");
        let url = with_password_file("postgresql://forgettable:from-env@db/users", Some(&file.0))
            .expect("password replaced");
        assert_eq!(url, "postgresql://forgettable:from-file@db/users");
    }

    #[test]
    fn an_unreadable_password_file_names_the_variable() {
        let missing = std::env::temp_dir().join("common-config-no-such-file.password");
        let err = with_password_file("postgres://forgettable@db/users", Some(&missing))
            .expect_err("missing file");
        assert_eq!(err.name, "DATABASE_PASSWORD_FILE");
        assert!(err.message.contains("cannot read"), "{err}");
    }

    #[test]
    fn an_empty_password_file_is_refused() {
        let file = PasswordFile::new("empty", "\n");
        let err = with_password_file("postgres://forgettable@db/users", Some(&file.0))
            .expect_err("empty password");
        assert_eq!(err.name, "DATABASE_PASSWORD_FILE");
    }

    #[test]
    fn a_password_file_with_a_sqlite_url_is_refused() {
        let file = PasswordFile::new("sqlite", "s3cret\n");
        let err = with_password_file("sqlite://data/users.db", Some(&file.0))
            .expect_err("sqlite has no password");
        assert_eq!(err.name, "DATABASE_PASSWORD_FILE");
        assert!(err.message.contains("PostgreSQL URLs"), "{err}");
    }

    #[test]
    fn a_password_file_with_a_socket_url_is_refused() {
        let file = PasswordFile::new("socket", "s3cret\n");
        let err = with_password_file("postgres:///users?host=/run/postgresql", Some(&file.0))
            .expect_err("no host");
        assert_eq!(err.name, "DATABASE_PASSWORD_FILE");
        assert!(err.message.contains("no host"), "{err}");
    }

    #[test]
    fn a_password_query_parameter_is_refused_without_repeating_it() {
        let file = PasswordFile::new("no-echo", "s3cret\n");
        let err = with_password_file(
            "postgres://forgettable@db/users?password=old",
            Some(&file.0),
        )
        .expect_err("query password");
        assert!(!err.to_string().contains("old"), "{err}");
    }

    #[test]
    fn a_database_password_never_reaches_debug_output() {
        let url = DatabaseUrl::from("postgres://app:s3cret@db:5432/images".to_owned());
        assert_eq!(format!("{url:?}"), "\"postgres://app:***@db:5432/images\"");
        assert_eq!(&*url, "postgres://app:s3cret@db:5432/images");
        let sqlite = DatabaseUrl::from("sqlite://data/images.db".to_owned());
        assert_eq!(format!("{sqlite:?}"), "\"sqlite://data/images.db\"");
    }
}
