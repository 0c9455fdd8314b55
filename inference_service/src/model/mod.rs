//! The memorability model: its manifest, the preprocessing it expects, the tract runner and the
//! bounded pool that runs it.

pub mod manifest;
pub mod pool;
pub mod preprocess;
pub mod runner;

pub use manifest::Manifest;
pub use pool::{InferencePool, PoolError};
pub use preprocess::Preprocessor;
pub use runner::LoadedModel;
