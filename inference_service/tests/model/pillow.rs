//! The service's preprocessing against Pillow's, on real photographs.
//!
//! `convert/preprocess_reference.py` (run with `$FORGETTABLE_PYTHON`) is the reference: it does
//! what the model's authors did with Pillow. Each photo is compared twice: from the file (decoder
//! and resize together) and from the pixels the service decoded, saved losslessly (resize and crop
//! alone). The `image` crate's own triangle filter is measured beside it, to show why the service
//! carries PIL's algorithm.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use image::{imageops::FilterType, RgbImage};
use inference_service::model::{preprocess::centre_crop, Manifest, Preprocessor};

use crate::helpers::{decode_photo, photos, required_env, tiny_dir, Photo};

/// The preprocessing block of the ResMem manifest (as `cargo xtask model` writes it).
const RESMEM_PREPROCESS: &str = r#"{"resize": {"height": 256, "width": 256, "filter": "bilinear"},
    "crop": {"height": 227, "width": 227}, "scale": 255.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}"#;

pub fn python() -> String {
    required_env("FORGETTABLE_PYTHON", "the Pillow preprocessing comparison")
}

fn reference_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("convert")
        .join("preprocess_reference.py")
}

/// Pillow's input tensor for `image` under the manifest in `model_dir`.
pub fn pillow_tensor(python: &str, model_dir: &Path, image: &Path) -> Vec<f32> {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let status = Command::new(python)
        .arg(reference_script())
        .arg(model_dir)
        .arg(image)
        .arg(out.path())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {python} (FORGETTABLE_PYTHON): {e}"));
    assert!(
        status.success(),
        "the Pillow reference failed on {}",
        image.display()
    );
    let bytes = std::fs::read(out.path()).expect("reference tensor");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A model folder whose manifest has ResMem's preprocessing (Pillow's script reads only that).
fn resmem_like_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_dir().join("manifest.json")).expect("tiny manifest"),
    )
    .expect("json");
    manifest["preprocess"] = serde_json::from_str(RESMEM_PREPROCESS).expect("preprocess json");
    manifest["input"]["height"] = 227.into();
    manifest["input"]["width"] = 227.into();
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).expect("write manifest");
    std::fs::copy(tiny_dir().join("model.onnx"), dir.path().join("model.onnx"))
        .expect("copy model");
    dir
}

/// Largest difference in 8-bit pixel levels between two `/255` tensors.
fn max_levels(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "tensor sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) * 255.0).abs())
        .fold(0.0, f32::max)
}

/// Share of values that differ at all.
fn share_differing(a: &[f32], b: &[f32]) -> f64 {
    let differing = a
        .iter()
        .zip(b)
        .filter(|(x, y)| ((*x - *y) * 255.0).abs() > 0.5)
        .count();
    differing as f64 / a.len() as f64
}

/// The same pipeline with the `image` crate's `Triangle` resize instead of PIL's algorithm.
fn image_crate_tensor(pre: &Preprocessor, manifest: &Manifest, decoded: &RgbImage) -> Vec<f32> {
    let p = &manifest.preprocess;
    let resized = image::imageops::resize(
        decoded,
        p.resize.width,
        p.resize.height,
        FilterType::Triangle,
    );
    pre.normalise(&centre_crop(&resized, p.crop.width, p.crop.height))
}

#[test]
fn pillow_and_the_service_turn_photos_into_the_same_pixels() {
    let python = python();
    let resmem_like = resmem_like_dir();
    for model_dir in [tiny_dir(), resmem_like.path().to_path_buf()] {
        let manifest = Manifest::load(&model_dir).expect("manifest");
        let pre = Preprocessor::new(&manifest.preprocess);
        let resize = manifest.preprocess.resize;
        for Photo { name, path } in photos() {
            let decoded = decode_photo(&path);
            let ours = pre.tensor_data(&decoded);

            let lossless = tempfile::Builder::new()
                .suffix(".png")
                .tempfile()
                .expect("temp png");
            decoded
                .save_with_format(lossless.path(), image::ImageFormat::Png)
                .expect("save png");
            let pillow_same_pixels = pillow_tensor(&python, &model_dir, lossless.path());
            let pillow_from_file = pillow_tensor(&python, &model_dir, &path);
            let image_crate = image_crate_tensor(&pre, &manifest, &decoded);

            let resize_only = max_levels(&ours, &pillow_same_pixels);
            let whole = max_levels(&ours, &pillow_from_file);
            println!(
                "{name:<12} resize {}x{}: service vs Pillow, same pixels: max {resize_only:.0} levels ({:.2}% differ); \
                 from the file: max {whole:.0} levels ({:.2}% differ); image crate Triangle vs Pillow: max {:.0} levels ({:.2}% differ)",
                resize.width,
                resize.height,
                100.0 * share_differing(&ours, &pillow_same_pixels),
                100.0 * share_differing(&ours, &pillow_from_file),
                max_levels(&image_crate, &pillow_same_pixels),
                100.0 * share_differing(&image_crate, &pillow_same_pixels),
            );
            assert_eq!(
                resize_only, 0.0,
                "{name}: the resize and crop must match Pillow exactly"
            );
            if name.ends_with(".png") {
                assert_eq!(
                    whole, 0.0,
                    "{name}: a PNG decodes identically, so the whole pipeline must match"
                );
            } else {
                assert!(
                    whole <= 4.0,
                    "{name}: JPEG decoders differ by a few levels at most, got {whole}"
                );
            }
        }
    }
}
