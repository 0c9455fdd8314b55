//! What both inference test suites (`tests/api`, `tests/model`) need to run the ONNX Runtime
//! engine; each includes this file as a module.

use std::path::{Path, PathBuf};

use inference_service::config::find_onnxruntime;

/// ONNX Runtime's library: `ORT_DYLIB_PATH`, else the one `cargo xtask model` installs into the
/// workspace's `.venv`; its absence fails the test with the fix.
pub fn onnxruntime_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| find_onnxruntime(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv")))
        .unwrap_or_else(|| {
            panic!(
                "no ONNX Runtime library for the onnxruntime engine: run `cargo xtask model` (it \
                 installs the onnxruntime wheel into ./.venv) or export ORT_DYLIB_PATH"
            )
        })
}
