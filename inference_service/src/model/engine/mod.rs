//! The engines that run the ONNX model behind one small trait: tract (pure Rust, the default) and
//! ONNX Runtime (its shared library loaded at run time). Each prepares one *lane* per inference
//! worker (a tract thread pool, an ONNX Runtime session) so that workers never wait on each other,
//! and runs one forward pass with `INFERENCE_THREADS` threads.

pub mod onnxruntime;
pub mod tract;

use std::{
    fmt,
    path::Path,
    str::FromStr,
    sync::{Mutex, TryLockError},
};

/// `INFERENCE_ENGINE`: which runtime runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// tract-onnx, pure Rust.
    #[default]
    Tract,
    /// ONNX Runtime through its shared library (`ORT_DYLIB_PATH`).
    OnnxRuntime,
}

impl EngineKind {
    /// The name `INFERENCE_ENGINE` and `GET /model` use.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::OnnxRuntime => "onnxruntime",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tract" => Ok(EngineKind::Tract),
            "onnxruntime" => Ok(EngineKind::OnnxRuntime),
            _ => Err("expected `tract` or `onnxruntime`".to_owned()),
        }
    }
}

/// The model an engine loads: its file and the one input it must have.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec<'a> {
    pub path: &'a Path,
    pub input_name: &'a str,
    /// `[1, 3, height, width]`.
    pub input_shape: [usize; 4],
}

/// How many forward passes run at once (`INFERENCE_WORKERS`) and with how many threads each
/// (`INFERENCE_THREADS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    pub lanes: usize,
    pub threads: usize,
}

impl Default for Parallelism {
    fn default() -> Self {
        Self {
            lanes: 1,
            threads: 1,
        }
    }
}

/// A model loaded into an engine, ready to run.
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// One forward pass on a channel-first input of `input_shape`; the values of the first output.
    /// Blocking and CPU-heavy: run it on the inference pool.
    fn run(&self, input: Vec<f32>) -> anyhow::Result<Vec<f32>>;
}

/// An engine ready to load models: for ONNX Runtime, its library is loaded already, so a missing
/// library fails at start-up rather than when the model loads.
#[derive(Debug, Clone)]
pub enum Runtime {
    Tract,
    OnnxRuntime(onnxruntime::Library),
}

impl Runtime {
    /// Prepares the engine `kind`; ONNX Runtime loads the shared library at `library`
    /// (`ORT_DYLIB_PATH`, or the one found under `./.venv`).
    pub fn start(kind: EngineKind, library: Option<&Path>) -> anyhow::Result<Self> {
        match kind {
            EngineKind::Tract => Ok(Runtime::Tract),
            EngineKind::OnnxRuntime => {
                let path = library.ok_or(onnxruntime::LibraryError::NotFound)?;
                Ok(Runtime::OnnxRuntime(onnxruntime::Library::load(path)?))
            }
        }
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        match self {
            Runtime::Tract => EngineKind::Tract,
            Runtime::OnnxRuntime(_) => EngineKind::OnnxRuntime,
        }
    }

    /// Loads and plans `model` with one lane per worker. Blocking and slow for a large model.
    pub fn load(
        &self,
        model: &ModelSpec<'_>,
        parallelism: Parallelism,
    ) -> anyhow::Result<Box<dyn Engine>> {
        Ok(match self {
            Runtime::Tract => Box::new(tract::TractEngine::load(model, parallelism)?),
            Runtime::OnnxRuntime(library) => {
                Box::new(onnxruntime::OrtEngine::load(library, model, parallelism)?)
            }
        })
    }
}

/// One resource per worker. The pool never runs more jobs than there are lanes, so a job finds a
/// free lane at once; a caller outside the pool (a test, a measurement) that finds none waits for
/// the first.
struct Lanes<T>(Vec<Mutex<T>>);

impl<T> Lanes<T> {
    fn new(lanes: Vec<T>) -> Self {
        Self(lanes.into_iter().map(Mutex::new).collect())
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> anyhow::Result<R> {
        for lane in &self.0 {
            match lane.try_lock() {
                Ok(mut guard) => return Ok(f(&mut guard)),
                // A job that panicked leaves the lane usable: engines keep no state between runs.
                Err(TryLockError::Poisoned(poisoned)) => return Ok(f(&mut poisoned.into_inner())),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
        let first = self
            .0
            .first()
            .ok_or_else(|| anyhow::anyhow!("the engine has no lanes"))?;
        let mut guard = first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(f(&mut guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_parse_in_any_case() {
        assert_eq!("tract".parse(), Ok(EngineKind::Tract));
        assert_eq!(" OnnxRuntime ".parse(), Ok(EngineKind::OnnxRuntime));
        assert!("ort".parse::<EngineKind>().is_err());
    }

    #[test]
    fn a_busy_lane_is_skipped_for_a_free_one() {
        let lanes = Lanes::new(vec![1, 2]);
        let first = lanes.0[0].lock().expect("lock");
        assert_eq!(lanes.with(|v| *v).expect("lane"), 2);
        drop(first);
        assert_eq!(lanes.with(|v| *v).expect("lane"), 1);
    }
}
