//! What every Forgettable Images service shares.
//!
//! - [`config`]: typed settings read from the environment, failing fast with the variable's name.
//! - [`telemetry`]: `tracing` set-up (JSON with `LOG_FORMAT=json`).
//! - [`problem`]: RFC 9457 problem+json errors and the JSON/path/query extractors that use them.
//! - [`auth`]: EdDSA JWT claims, verification with a JWKS cache, the [`auth::AuthUser`] extractor.
//! - [`metrics`]: the Prometheus registry and HTTP metrics every service exposes.
//! - [`middleware`]: request id, `X-Served-By`, metrics, load shedding, timeouts, panics.
//! - [`body_rate`]: the minimum rate a request body must arrive at (slower ones get 408).
//! - [`unread_body`]: `Connection: close` on an answer given before the request body was read.
//! - [`openapi`]: the bearer security scheme and problem schema of every OpenAPI document.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! - [`server`]: [`server::Application`] (bind, port, run until stopped) and graceful shutdown.
//! - [`service`]: the [`service::Service`] trait and the `main` every service binary runs.
//! - [`state`]: [`state::SharedState`], a service's parts behind one `Arc`, as axum clones it.
//! - [`healthcheck`]: the `healthcheck` subcommand for container health checks.
//! - `db` (feature `db`): connecting, migrating, readiness and named unique-constraint violations.
//! - [`timestamp`]: the stored time unit (microseconds) and its RFC 3339 text.
//! - [`pagination`]: page sizes, cursors and cutting a page out of the rows of a query.
//! - `imaging` (feature `imaging`): which image files are accepted, checked and decoded under limits.

pub mod auth;
pub mod body_rate;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod healthcheck;
#[cfg(feature = "imaging")]
pub mod imaging;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod problem;
pub mod server;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod timestamp;
pub mod unread_body;

pub use problem::{AppJson, Problem};
