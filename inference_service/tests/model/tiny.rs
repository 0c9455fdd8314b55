//! The committed tiny model: each engine must give the reference scores (computed by the Python
//! onnxruntime).

use crate::helpers::{
    decode_photo, fixtures, formula_input, load, photos, reference, tiny_dir, Photo, ENGINES,
};

#[test]
fn each_engine_gives_the_reference_scores_for_every_formula_input() {
    let expected = reference(tiny_dir().join("expected.json"));
    assert!(!expected.inputs.is_empty());
    for engine in ENGINES {
        let model = load(&tiny_dir(), engine);
        assert_eq!(model.engine(), engine);
        for input in &expected.inputs {
            let score = model.forward(formula_input(input)).expect("forward");
            let diff = (score - input.score).abs();
            println!(
                "tiny {:<18} {engine} {score:.8} reference {:.8} diff {diff:.2e}",
                input.name, input.score
            );
            assert!(
                diff <= 1e-5,
                "{}: {engine} {score} vs reference {} (diff {diff})",
                input.name,
                input.score
            );
        }
    }
}

#[test]
fn photos_preprocessed_by_the_service_score_as_with_pillow() {
    let expected = reference(tiny_dir().join("expected.json"));
    for engine in ENGINES {
        photos_score_as_with_pillow_on(engine, &expected);
    }
    assert!(fixtures().join("photos").join("ATTRIBUTION.md").is_file());
}

fn photos_score_as_with_pillow_on(
    engine: inference_service::model::EngineKind,
    expected: &crate::helpers::Reference,
) {
    let model = load(&tiny_dir(), engine);
    for Photo { name, path } in photos() {
        let reference = expected.photo_score(&name);
        let input = model.preprocessor().tensor_data(&decode_photo(&path));
        let score = model.forward(input).expect("forward");
        let diff = (score - reference).abs();
        println!(
            "tiny photo {name:<12} {engine} {score:.8} pillow+onnxruntime {reference:.8} diff {diff:.2e}"
        );
        // PNGs decode identically everywhere, so only the runtime's summation order differs; the
        // JPEG also differs by a level here and there between decoders.
        let tolerance = if name.ends_with(".png") { 1e-5 } else { 1e-3 };
        assert!(
            diff <= tolerance,
            "{name}: {engine} {score} vs {reference} (diff {diff})"
        );
    }
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
    let runtime = crate::helpers::runtime(inference_service::model::EngineKind::Tract);
    let err = inference_service::model::LoadedModel::load(
        dir.path(),
        parsed,
        &runtime,
        inference_service::model::Parallelism::default(),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("SHA-256"), "{err:#}");
}
