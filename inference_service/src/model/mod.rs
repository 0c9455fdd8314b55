//! The memorability model: its manifest, the preprocessing it expects, the engines that run it
//! (tract or ONNX Runtime), the loaded model and the bounded pool that runs it.

pub mod engine;
pub mod manifest;
pub mod pool;
pub mod preprocess;
pub mod runner;

pub use engine::{EngineKind, Parallelism, Runtime};
pub use manifest::{Manifest, Precision};
pub use pool::{InferencePool, PoolError};
pub use preprocess::Preprocessor;
pub use runner::LoadedModel;
