//! users_service settings, read from the environment once at start.
//!
//! Every variable is listed in `docs/configuration.md`; a bad value stops the service with a
//! message naming it.

use std::{net::IpAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use common::{
    auth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER},
    config::{database_url, secs_or, var, var_or, ConfigError, DatabaseUrl, ServerSettings},
    service::ServiceSettings,
};
use ipnet::IpNet;
use secrecy::SecretString;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// `ARGON2_MEMORY_KIB`
    pub memory_kib: u32,
    /// `ARGON2_ITERATIONS`
    pub iterations: u32,
    /// `ARGON2_PARALLELISM`
    pub parallelism: u32,
    /// `ARGON2_MAX_CONCURRENT`: hashes running at once on the blocking pool.
    pub max_concurrent: usize,
    /// `ARGON2_MAX_QUEUE`: hashes waiting for a slot; one more is answered 503 at once.
    pub max_queue: usize,
}

impl Default for Argon2Settings {
    /// The OWASP minimum for argon2id: 19 MiB, two passes, one lane.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queue: 16,
        }
    }
}

/// The first admin to create on start when no admin exists yet.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub email: String,
    pub password: SecretString,
}

/// Everything users_service reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL`: `sqlite://…` (file created when missing) or `postgres://…`, with the
    /// password from `DATABASE_PASSWORD_FILE` when that is set.
    pub database_url: DatabaseUrl,
    /// `JWT_SIGNING_KEY_FILE`: Ed25519 PKCS#8 PEM; its public key goes to `<file>.pub`.
    pub signing_key_file: PathBuf,
    /// `JWT_GENERATE_KEY`: create the key file when it is missing.
    pub generate_key: bool,
    /// `JWT_ISSUER`
    pub issuer: String,
    /// `JWT_AUDIENCE`
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECS`
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS`
    pub refresh_token_ttl: Duration,
    pub argon2: Argon2Settings,
    /// `LOGIN_RATE_PER_MINUTE_IP`
    pub login_rate_per_ip: NonZeroU32,
    /// `LOGIN_RATE_PER_MINUTE_USER`
    pub login_rate_per_user: NonZeroU32,
    /// `REGISTER_RATE_PER_MINUTE_IP`
    pub register_rate_per_ip: NonZeroU32,
    /// `TRUSTED_PROXY_CIDRS`: peers whose right-most `X-Forwarded-For` entry is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// `ADMIN_USERNAME` / `ADMIN_EMAIL` / `ADMIN_PASSWORD`, when all three are set.
    pub bootstrap_admin: Option<BootstrapAdmin>,
}

fn nonzero(name: &str, default: u32) -> Result<NonZeroU32, ConfigError> {
    NonZeroU32::new(var_or(name, default)?)
        .ok_or_else(|| ConfigError::new(name, "must be at least 1"))
}

/// Parses a comma-separated CIDR list; a bare address means that one host.
pub fn parse_cidrs(name: &str, raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(name, format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
                })
        })
        .collect()
}

impl ServiceSettings for Settings {
    /// The address of users-1.
    const DEFAULT_LISTEN_ADDR: &'static str = "127.0.0.1:8101";
    const DEFAULT_INSTANCE_NAME: &'static str = "users-1";

    fn from_env() -> Result<Self, ConfigError> {
        let server = Self::server_from_env()?;
        let defaults = Argon2Settings::default();
        let argon2 = Argon2Settings {
            memory_kib: var_or("ARGON2_MEMORY_KIB", defaults.memory_kib)?,
            iterations: var_or("ARGON2_ITERATIONS", defaults.iterations)?,
            parallelism: var_or("ARGON2_PARALLELISM", defaults.parallelism)?,
            max_concurrent: var_or("ARGON2_MAX_CONCURRENT", defaults.max_concurrent)?,
            max_queue: var_or("ARGON2_MAX_QUEUE", defaults.max_queue)?,
        };
        if argon2.memory_kib < 19_456 || argon2.iterations < 2 || argon2.parallelism < 1 {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                "argon2 cost below the OWASP minimum (ARGON2_MEMORY_KIB >= 19456, ARGON2_ITERATIONS >= 2, ARGON2_PARALLELISM >= 1)",
            ));
        }
        if argon2.max_concurrent == 0 {
            return Err(ConfigError::new(
                "ARGON2_MAX_CONCURRENT",
                "must be at least 1",
            ));
        }
        let trusted: String = var_or("TRUSTED_PROXY_CIDRS", "127.0.0.0/8,::1/128".to_owned())?;
        let admin = (
            var::<String>("ADMIN_USERNAME")?,
            var::<String>("ADMIN_EMAIL")?,
            var::<String>("ADMIN_PASSWORD")?,
        );
        let bootstrap_admin =
            match admin {
                (Some(username), Some(email), Some(password)) => Some(BootstrapAdmin {
                    username,
                    email,
                    password: SecretString::from(password),
                }),
                // ADMIN_PASSWORD alone is the password of `create-admin`, not a bootstrap request.
                (None, None, _) => None,
                _ => return Err(ConfigError::new(
                    "ADMIN_USERNAME",
                    "set ADMIN_USERNAME, ADMIN_EMAIL and ADMIN_PASSWORD together, or none of them",
                )),
            };
        let settings = Self {
            server,
            database_url: database_url("sqlite://data/users.db")?,
            signing_key_file: var_or(
                "JWT_SIGNING_KEY_FILE",
                PathBuf::from("data/keys/jwt-ed25519.pem"),
            )?,
            generate_key: var_or("JWT_GENERATE_KEY", true)?,
            issuer: var_or("JWT_ISSUER", DEFAULT_ISSUER.to_owned())?,
            audience: var_or("JWT_AUDIENCE", DEFAULT_AUDIENCE.to_owned())?,
            access_token_ttl: secs_or("ACCESS_TOKEN_TTL_SECS", 900)?,
            refresh_token_ttl: secs_or("REFRESH_TOKEN_TTL_SECS", 2_592_000)?,
            argon2,
            login_rate_per_ip: nonzero("LOGIN_RATE_PER_MINUTE_IP", 30)?,
            login_rate_per_user: nonzero("LOGIN_RATE_PER_MINUTE_USER", 10)?,
            register_rate_per_ip: nonzero("REGISTER_RATE_PER_MINUTE_IP", 10)?,
            trusted_proxies: parse_cidrs("TRUSTED_PROXY_CIDRS", &trusted)?,
            bootstrap_admin,
        };
        if settings.access_token_ttl.is_zero() {
            return Err(ConfigError::new(
                "ACCESS_TOKEN_TTL_SECS",
                "must be at least 1",
            ));
        }
        if settings.refresh_token_ttl.is_zero() {
            return Err(ConfigError::new(
                "REFRESH_TOKEN_TTL_SECS",
                "must be at least 1",
            ));
        }
        Ok(settings)
    }

    fn server(&self) -> &ServerSettings {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_lists_accept_networks_and_bare_addresses() {
        let nets = parse_cidrs("X", "127.0.0.0/8, ::1/128,10.1.2.3").expect("valid");
        assert_eq!(nets.len(), 3);
        assert!(nets[2].contains(&"10.1.2.3".parse::<IpAddr>().expect("ip")));
    }

    #[test]
    fn a_bad_cidr_names_the_variable() {
        let err = parse_cidrs("TRUSTED_PROXY_CIDRS", "127.0.0.0/8,nonsense").expect_err("invalid");
        assert!(err.to_string().contains("TRUSTED_PROXY_CIDRS"), "{err}");
    }
}
