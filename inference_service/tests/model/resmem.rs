//! The real converted ResMem model: each engine against torch's scores, and the photos' scores
//! with the service's preprocessing against Pillow's.

use inference_service::model::{EngineKind, LoadedModel, Manifest, Parallelism};

use crate::{
    helpers::{
        decode_photo, fixtures, formula_input, load, photos, reference, resmem_dir, runtime, Photo,
    },
    pillow::{pillow_tensor, python},
};

/// The golden file's tolerance: torch and the engines sum in different orders.
const GOLDEN_TOLERANCE: f32 = 1e-5;

#[test]
fn tract_gives_torch_scores_for_the_golden_inputs() {
    golden_scores_match_torch(EngineKind::Tract);
}

#[test]
fn onnxruntime_gives_torch_scores_for_the_golden_inputs() {
    golden_scores_match_torch(EngineKind::OnnxRuntime);
}

/// The golden inputs on `engine`, run with two threads so that the threaded path is the one
/// checked (the tiny model's tests run single-threaded).
fn golden_scores_match_torch(engine: EngineKind) {
    let dir = resmem_dir();
    let manifest = Manifest::load(&dir).expect("manifest");
    let parallelism = Parallelism {
        lanes: 1,
        threads: 2,
    };
    let model =
        LoadedModel::load(&dir, manifest, &runtime(engine), parallelism).expect("load model");
    println!(
        "resmem on {engine} loaded in {:.2} s, sha256 {}",
        model.load_seconds, model.sha256
    );
    let golden = reference(fixtures().join("resmem_golden.json"));
    assert!(!golden.inputs.is_empty());
    let mut worst = 0.0f32;
    for input in &golden.inputs {
        let score = model.forward(formula_input(input)).expect("forward");
        let diff = (score - input.score).abs();
        worst = worst.max(diff);
        println!(
            "resmem {:<18} {engine} {score:.8} torch {:.8} diff {diff:.2e}",
            input.name, input.score
        );
    }
    println!("resmem golden inputs on {engine}: worst difference {worst:.2e}");
    assert!(
        worst <= GOLDEN_TOLERANCE,
        "{engine} differs from torch by {worst} (tolerance {GOLDEN_TOLERANCE})"
    );
}

#[test]
fn photos_score_the_same_with_the_service_preprocessing_and_with_pillow() {
    let python = python();
    let dir = resmem_dir();
    let model = load(&dir, EngineKind::Tract);
    let golden = reference(fixtures().join("resmem_golden.json"));
    for Photo { name, path } in photos() {
        let ours = model
            .forward(model.preprocessor().tensor_data(&decode_photo(&path)))
            .expect("forward");
        let pillow = model
            .forward(pillow_tensor(&python, &dir, &path))
            .expect("forward");
        let torch = golden.photo_score(&name);
        println!(
            "resmem photo {name:<12} service {ours:.6} tract+Pillow {pillow:.6} torch+Pillow {torch:.6} \
             | service vs Pillow preprocessing {:.2e}, service vs torch {:.2e}",
            (ours - pillow).abs(),
            (ours - torch).abs()
        );
        let tolerance = if name.ends_with(".png") { 1e-5 } else { 2e-3 };
        assert!(
            (ours - pillow).abs() <= tolerance,
            "{name}: {ours} vs {pillow} with Pillow's preprocessing"
        );
        assert!(
            (ours - torch).abs() <= tolerance + GOLDEN_TOLERANCE,
            "{name}: {ours} vs torch {torch}"
        );
    }
}
