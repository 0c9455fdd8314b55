//! The committed tiny model: tract must give onnxruntime's scores.

use crate::helpers::{
    decode_photo, fixtures, formula_input, load, photos, reference, tiny_dir, Photo,
};

#[test]
fn tract_gives_the_reference_scores_for_every_formula_input() {
    let model = load(&tiny_dir());
    let expected = reference(tiny_dir().join("expected.json"));
    assert!(!expected.inputs.is_empty());
    for input in &expected.inputs {
        let score = model.forward(formula_input(input)).expect("forward");
        let diff = (score - input.score).abs();
        println!(
            "tiny {:<18} tract {score:.8} onnxruntime {:.8} diff {diff:.2e}",
            input.name, input.score
        );
        assert!(
            diff <= 1e-5,
            "{}: tract {score} vs onnxruntime {} (diff {diff})",
            input.name,
            input.score
        );
    }
}

#[test]
fn photos_preprocessed_by_the_service_score_as_with_pillow() {
    let model = load(&tiny_dir());
    let expected = reference(tiny_dir().join("expected.json"));
    for Photo { name, path } in photos() {
        let reference = expected.photo_score(&name);
        let input = model.preprocessor().tensor_data(&decode_photo(&path));
        let score = model.forward(input).expect("forward");
        let diff = (score - reference).abs();
        println!(
            "tiny photo {name:<12} service {score:.8} pillow+onnxruntime {reference:.8} diff {diff:.2e}"
        );
        // PNGs decode identically everywhere, so only the runtime's summation order differs; the
        // JPEG also differs by a level here and there between decoders.
        let tolerance = if name.ends_with(".png") { 1e-5 } else { 1e-3 };
        assert!(
            diff <= tolerance,
            "{name}: {score} vs {reference} (diff {diff})"
        );
    }
    assert!(fixtures().join("photos").join("ATTRIBUTION.md").is_file());
}

#[test]
fn a_model_whose_file_does_not_match_the_manifest_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = std::fs::read_to_string(tiny_dir().join("manifest.json")).expect("manifest");
    std::fs::write(dir.path().join("manifest.json"), manifest).expect("write manifest");
    let mut model = std::fs::read(tiny_dir().join("model.onnx")).expect("model");
    let last = model.len() - 1;
    model[last] ^= 1;
    std::fs::write(dir.path().join("model.onnx"), model).expect("write model");
    let parsed = inference_service::model::Manifest::load(dir.path()).expect("manifest parses");
    let err = inference_service::model::LoadedModel::load(dir.path(), parsed).expect_err("refused");
    assert!(err.to_string().contains("SHA-256"), "{err:#}");
}
