//! Fixtures, formula inputs and the environment the real-model tests need.

use std::path::{Path, PathBuf};

use common::{config::ImageLimits, imaging::decode_rgb};
use image::RgbImage;
use inference_service::model::{EngineKind, LoadedModel, Manifest, Parallelism, Runtime};
use serde::Deserialize;

/// `inference_service/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// The committed tiny model.
pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny")
}

/// A photograph fixture: its file name (the key of its reference scores) and its path.
pub struct Photo {
    pub name: String,
    pub path: PathBuf,
}

/// The photographs, sorted by name.
pub fn photos() -> Vec<Photo> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(fixtures().join("photos"))
        .expect("photo fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    photos.sort();
    assert!(
        photos.len() >= 3,
        "expected the photo fixtures, found {photos:?}"
    );
    photos
        .into_iter()
        .map(|path| Photo {
            name: path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned(),
            path,
        })
        .collect()
}

/// A photograph decoded as the service decodes uploads.
pub fn decode_photo(path: &std::path::Path) -> RgbImage {
    let bytes = std::fs::read(path).expect("read photo");
    decode_rgb(&bytes, &ImageLimits::default()).expect("decode photo")
}

/// Both engines: every model test runs on each.
pub const ENGINES: [EngineKind; 2] = [EngineKind::Tract, EngineKind::OnnxRuntime];

#[path = "../support/onnxruntime.rs"]
mod onnxruntime;
pub use onnxruntime::onnxruntime_library;

/// The engine `kind`, started.
pub fn runtime(kind: EngineKind) -> Runtime {
    let library = (kind == EngineKind::OnnxRuntime).then(onnxruntime_library);
    Runtime::start(kind, library.as_deref()).expect("start the engine")
}

/// Loads a model folder into the engine `kind`, one worker with one thread.
pub fn load(dir: &Path, kind: EngineKind) -> LoadedModel {
    let manifest = Manifest::load(dir).expect("manifest");
    LoadedModel::load(dir, manifest, &runtime(kind), Parallelism::default()).expect("load model")
}

/// A variable `cargo xtask test` exports; its absence fails the test with the fix.
pub fn required_env(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set, so {what} cannot run. Run the tests with `cargo xtask test`, which \
             converts the model and prepares the Python reference, or export {name} yourself."
        ),
    }
}

/// The real converted ResMem model folder.
pub fn resmem_dir() -> PathBuf {
    PathBuf::from(required_env("FORGETTABLE_MODEL_DIR", "the real-model test"))
}

/// The coefficients of a formula input (see `convert/test_inputs.py`).
#[derive(Debug, Deserialize)]
pub struct Coefficients {
    pub k0: i64,
    pub kc: i64,
    pub ky: i64,
    pub kx: i64,
    pub kxy: i64,
}

/// One reference input and the score the reference runtime gave it.
#[derive(Debug, Deserialize)]
pub struct ReferenceInput {
    pub name: String,
    pub height: usize,
    pub width: usize,
    pub coefficients: Coefficients,
    pub score: f32,
}

/// A photo and the score of the reference runtime after Pillow preprocessing.
#[derive(Debug, Deserialize)]
pub struct ReferencePhoto {
    pub file: String,
    pub score: f32,
}

/// `expected.json` / `resmem_golden.json`.
#[derive(Debug, Deserialize)]
pub struct Reference {
    pub inputs: Vec<ReferenceInput>,
    pub photos: Vec<ReferencePhoto>,
}

impl Reference {
    /// The reference score of the photograph `name`.
    pub fn photo_score(&self, name: &str) -> f32 {
        self.photos
            .iter()
            .find(|p| p.file == name)
            .unwrap_or_else(|| panic!("no reference score for {name}"))
            .score
    }
}

pub fn reference(path: PathBuf) -> Reference {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference scores")
}

/// `((k0 + kc*c + ky*y + kx*x + kxy*x*y) mod 256) / 255` as `f32`, NCHW with N = 1.
pub fn formula_input(input: &ReferenceInput) -> Vec<f32> {
    let k = &input.coefficients;
    let mut data = Vec::with_capacity(3 * input.height * input.width);
    for c in 0..3i64 {
        for y in 0..input.height as i64 {
            for x in 0..input.width as i64 {
                let n = (k.k0 + k.kc * c + k.ky * y + k.kx * x + k.kxy * x * y).rem_euclid(256);
                data.push(n as f32 / 255.0);
            }
        }
    }
    data
}
