//! What every Forgettable Images service shares.
//!
//! - [`config`]: typed settings read from the environment, failing fast with the variable's name.
//! - [`telemetry`]: `tracing` set-up (JSON with `LOG_FORMAT=json`).
//! - [`problem`]: RFC 9457 problem+json errors and the JSON/path/query extractors that use them.
//! - [`auth`]: EdDSA JWT claims, verification with a JWKS cache, the [`auth::AuthUser`] extractor.
//! - [`metrics`]: the Prometheus registry and HTTP metrics every service exposes.
//! - [`middleware`]: request id, `X-Served-By`, metrics, load shedding, timeouts, panics.
//! - [`openapi`]: the bearer security scheme and problem schema of every OpenAPI document.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! - [`server`]: [`server::Application`] (bind, port, run until stopped) and graceful shutdown.
//! - [`healthcheck`]: the `healthcheck` subcommand for container health checks.
//! - `imaging` (feature `imaging`): which image files are accepted, checked and decoded under limits.

pub mod auth;
pub mod config;
pub mod healthcheck;
#[cfg(feature = "imaging")]
pub mod imaging;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod server;
pub mod telemetry;

pub use problem::{AppJson, Problem};
