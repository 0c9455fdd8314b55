//! users_service: accounts, password login, EdDSA access tokens, rotating refresh tokens and
//! administration for Forgettable Images.
//!
//! - [`config`]: [`Settings`] from the environment.
//! - [`startup`]: [`startup::Application`] — connect, migrate, load the signing key, bind, serve
//!   (tests run the very same one).
//! - [`state`]: [`state::AppState`], what every handler can reach.
//! - [`routes`]: the HTTP endpoints and their OpenAPI document.
//! - [`domain`]: parsed input (`Username`, `Email`, `Password`).
//! - [`db`]: SQLite/PostgreSQL access and migrations.
//! - [`passwords`], [`tokens`], [`keys`]: argon2id hashing, token minting, the signing key.
//! - [`rate_limit`]: login throttling and the client IP.
//! - [`commands`]: `create-admin`, `gen-key`, the admin bootstrap.

pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod passwords;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tokens;

pub use config::Settings;
pub use startup::Application;
