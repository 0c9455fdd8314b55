//! inference_service: predicts whether an image is forgettable with an ONNX memorability model.
//!
//! - [`config`]: settings from the environment (model folder, images_service URL, pool, limits).
//! - [`startup`]: [`startup::Application`] — check the manifest, load the model in the background,
//!   bind, serve.
//! - [`state`]: [`state::AppState`], what every handler can reach.
//! - [`routes`]: `GET /predict/{image_id}`, `POST /predict`, `GET /model` and the OpenAPI document.
//! - [`predictor`]: bytes → cached or computed score → label.
//! - [`model`]: the manifest, PIL-exact preprocessing, the tract runner and the bounded pool.
//! - [`images`]: fetching a stored image from images_service with the caller's token.
//! - [`error`]: the service's error enum and its problem+json answers.
//! - [`metrics`]: inference time, predictions by label, queue depth, model and cache metrics.

pub mod config;
pub mod error;
pub mod images;
pub mod metrics;
pub mod model;
pub mod predictor;
pub mod routes;
pub mod startup;
pub mod state;

pub use config::Settings;
pub use startup::Application;
