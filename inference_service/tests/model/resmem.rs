//! The real converted ResMem model: tract against torch's scores, and the photos' scores with the
//! service's preprocessing against Pillow's.

use crate::{
    helpers::{decode_photo, fixtures, formula_input, load, photos, reference, resmem_dir, Photo},
    pillow::{pillow_tensor, python},
};

/// The golden file's tolerance: torch and tract sum in different orders.
const GOLDEN_TOLERANCE: f32 = 1e-5;

#[test]
fn tract_gives_torch_scores_for_the_golden_inputs() {
    let dir = resmem_dir();
    let model = load(&dir);
    println!(
        "resmem loaded in {:.2} s, sha256 {}",
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
            "resmem {:<18} tract {score:.8} torch {:.8} diff {diff:.2e}",
            input.name, input.score
        );
    }
    println!("resmem golden inputs: worst difference {worst:.2e}");
    assert!(
        worst <= GOLDEN_TOLERANCE,
        "tract differs from torch by {worst} (tolerance {GOLDEN_TOLERANCE})"
    );
}

#[test]
fn photos_score_the_same_with_the_service_preprocessing_and_with_pillow() {
    let python = python();
    let dir = resmem_dir();
    let model = load(&dir);
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
