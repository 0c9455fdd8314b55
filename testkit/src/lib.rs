//! Test support shared by every Forgettable Images test suite. Used only as a dev-dependency.
//!
//! - [`keys`]: [`TestKeys`], an Ed25519 key pair standing in for users_service's signing key: its
//!   private and public PEM, raw public key, key id, JWKS, a [`common::auth::TokenVerifier`] that
//!   trusts it, and signed access tokens.
//! - [`net`]: [`free_port`] and [`free_addr`], loopback ports nothing listens on (for a child process
//!   to bind, or for a "cannot be reached" address).
//! - [`ready`]: [`wait_until_ready`] (async, panics) and [`poll_until_ready`] /
//!   [`poll_until_ready_blocking`] (return [`NotReady`]) poll an HTTP URL until it answers 200 before
//!   a deadline; [`eventually`] waits for any condition the same way. Failures name the URL (or the
//!   condition) and the last answer. The only sleep is the short [`POLL_INTERVAL`] between polls.
//! - [`db`]: [`Backend`] (SQLite or PostgreSQL), [`database_url`] for a fresh database per test, and
//!   the [`on_both_databases!`] macro that turns each `async fn(Backend)` scenario into a SQLite and a
//!   PostgreSQL test.
//!
//! The PostgreSQL variants need `TEST_POSTGRES_URL` (a server URL whose user may create databases;
//! `cargo xtask test` starts one and exports it) and fail, never skip, without it.

pub mod db;
pub mod keys;
pub mod net;
pub mod ready;

pub use db::{database_url, fresh_postgres_database, Backend};
pub use keys::TestKeys;
pub use net::{free_addr, free_port};
pub use ready::{
    eventually, poll_until_ready, poll_until_ready_blocking, wait_until_ready, NotReady,
    POLL_INTERVAL, READY_WITHIN,
};
