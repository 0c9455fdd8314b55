//! images_service: authenticated image upload, listing, download and deletion.
//!
//! - [`config`]: settings from the environment (database, blob store, upload limits).
//! - [`startup`]: [`startup::Application`] — connect, migrate, sweep orphans, bind, serve.
//! - [`state`]: [`state::AppState`], what every handler can reach.
//! - [`routes`]: the HTTP endpoints and their OpenAPI document.
//! - [`domain`]: list cursors, ETag matching.
//! - [`db`]: the `images` table (SQLite or PostgreSQL through `sqlx::AnyPool`).
//! - [`recent_rows`]: rows read recently, so a repeated download asks the database nothing.
//! - [`storage`]: blobs in an object store, written to a temporary key and committed.
//! - [`upload_form`]: the upload's multipart/form-data body: its `file` field, read screened.
//! - [`error`]: the service's error enum and its problem+json answers.
//! - [`metrics`]: upload, rejection, deduplication and sweep counters.

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod recent_rows;
pub mod routes;
pub mod startup;
pub mod state;
pub mod storage;
pub mod upload_form;

pub use config::Settings;
pub use startup::Application;
