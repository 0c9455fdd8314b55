//! The ONNX Runtime engine, through the `ort` crate with its shared library loaded at run time:
//! `ORT_DYLIB_PATH`, or by default the `libonnxruntime.so` that `cargo xtask model` installs with
//! the onnxruntime wheel into `./.venv`. Nothing is downloaded or linked at build time.
//!
//! A process holds one ONNX Runtime library and one environment for its whole life (`ort` allows
//! no other), so the loaded library is remembered process-wide; asking for another one is an
//! error that says so. A library that is missing or cannot be loaded is an error naming
//! `ORT_DYLIB_PATH`, never a crash.

use std::{
    fmt,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use anyhow::{anyhow, ensure, Context};
use ort::{environment::Environment, session::Session, value::TensorRef};

use super::{Engine, EngineKind, Lanes, ModelSpec, Parallelism};

/// Why ONNX Runtime cannot be started; each names the variable that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(
        "ORT_DYLIB_PATH is not set and no libonnxruntime.so* was found under \
         ./.venv/lib/python3*/site-packages/onnxruntime/capi (`cargo xtask model` installs it with \
         the onnxruntime wheel): set ORT_DYLIB_PATH to ONNX Runtime's shared library"
    )]
    NotFound,
    #[error(
        "ORT_DYLIB_PATH names {0}, which is not a file: point it at ONNX Runtime's shared library \
         (libonnxruntime.so)"
    )]
    Missing(PathBuf),
    #[error("ORT_DYLIB_PATH names {path}, which cannot be loaded as ONNX Runtime: {reason}")]
    Unloadable { path: PathBuf, reason: String },
    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process, so ORT_DYLIB_PATH={wanted} \
         cannot take effect"
    )]
    AlreadyLoaded { loaded: PathBuf, wanted: PathBuf },
}

/// The ONNX Runtime library loaded into this process, and its environment.
#[derive(Clone)]
pub struct Library {
    path: PathBuf,
    environment: Environment,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The library this process loaded, if any: ONNX Runtime can be loaded only once per process.
static LOADED: Mutex<Option<Library>> = Mutex::new(None);

impl Library {
    /// Loads ONNX Runtime from `path` (once per process) and creates its environment.
    pub fn load(path: &Path) -> Result<Self, LibraryError> {
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(library) = loaded.as_ref() {
            return if same_file(&library.path, path) {
                Ok(library.clone())
            } else {
                Err(LibraryError::AlreadyLoaded {
                    loaded: library.path.clone(),
                    wanted: path.to_path_buf(),
                })
            };
        }
        if !path.is_file() {
            return Err(LibraryError::Missing(path.to_path_buf()));
        }
        let unloadable = |reason: String| LibraryError::Unloadable {
            path: path.to_path_buf(),
            reason,
        };
        // `ort` reports most failures as errors but asserts on some (a library without the
        // expected API table): those become the same start-up error.
        let environment = catch_unwind(AssertUnwindSafe(|| {
            ort::init_from(path)
                .map_err(|e| e.to_string())?
                .with_name("inference")
                .with_telemetry(false)
                .build()
                .map_err(|e| e.to_string())
        }))
        .map_err(|panic| unloadable(panic_message(panic.as_ref())))?
        .map_err(unloadable)?;
        let library = Library {
            path: path.to_path_buf(),
            environment,
        };
        *loaded = Some(library.clone());
        Ok(library)
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "ONNX Runtime panicked while loading".to_owned())
}

/// `ort`'s errors carry builders that are not `Send`: keep their message only.
fn ort_error<R>(e: ort::Error<R>) -> anyhow::Error {
    anyhow!("{e}")
}

/// A model in ONNX Runtime: one session per worker (a session runs one pass at a time), each with
/// `INFERENCE_THREADS` intra-op threads.
pub struct OrtEngine {
    sessions: Lanes<Session>,
    input_shape: [usize; 4],
}

impl OrtEngine {
    /// Creates the sessions and checks the model's single input.
    pub fn load(
        library: &Library,
        model: &ModelSpec<'_>,
        parallelism: Parallelism,
    ) -> anyhow::Result<Self> {
        let sessions = (0..parallelism.lanes.max(1))
            .map(|_| session(library, model, parallelism.threads))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            sessions: Lanes::new(sessions),
            input_shape: model.input_shape,
        })
    }
}

fn session(library: &Library, model: &ModelSpec<'_>, threads: usize) -> anyhow::Result<Session> {
    let path = model.path;
    let session = Session::builder(&library.environment)
        .map_err(ort_error)?
        .with_intra_threads(threads)
        .map_err(ort_error)?
        .with_inter_threads(1)
        .map_err(ort_error)?
        // Idle intra-op threads sleep instead of spinning: the workers and the other services
        // share the cores.
        .with_intra_op_spinning(false)
        .map_err(ort_error)?
        // At its info level ONNX Runtime logs a line per initializer it drops while optimising,
        // thousands per ResMem load; its warnings and errors still reach the log.
        .with_log_level(ort::logging::LogLevel::Warning)
        .map_err(ort_error)?
        .commit_from_file(path)
        .map_err(ort_error)
        .with_context(|| format!("ONNX Runtime cannot load the model {}", path.display()))?;
    let inputs = session.inputs();
    ensure!(
        inputs.len() == 1,
        "the model has {} inputs; one image input is expected",
        inputs.len()
    );
    let input_name = inputs[0].name();
    ensure!(
        input_name == model.input_name,
        "the model's input is named `{input_name}` but the manifest says `{}`",
        model.input_name
    );
    Ok(session)
}

impl Engine for OrtEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn run(&self, input: Vec<f32>) -> anyhow::Result<Vec<f32>> {
        let expected: usize = self.input_shape.iter().product();
        ensure!(
            input.len() == expected,
            "the input tensor has {} values, the model takes {expected}",
            input.len()
        );
        self.sessions.with(|session| -> anyhow::Result<Vec<f32>> {
            let tensor = TensorRef::from_array_view((self.input_shape, input.as_slice()))
                .map_err(ort_error)?;
            let outputs = session.run(ort::inputs![tensor]).map_err(ort_error)?;
            ensure!(outputs.len() > 0, "the model produced no output");
            let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(ort_error)?;
            Ok(values.to_vec())
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_names_the_variable() {
        let err = Library::load(Path::new("/nonexistent/libonnxruntime.so")).expect_err("missing");
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
    }
}
