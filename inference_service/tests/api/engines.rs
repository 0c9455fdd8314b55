//! The onnxruntime engine behind the same API, and the start-up errors of a missing or unusable
//! ONNX Runtime library or an unknown engine, in-process and from the real binary.

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use inference_service::{config::EngineSettings, model::EngineKind, startup::Application};
use reqwest::StatusCode;

use crate::helpers::{
    expected_photo_score, json_with, onnxruntime_engine, photo, settings, tiny_dir, TestApp,
    TestKeys,
};

#[tokio::test]
async fn the_onnxruntime_engine_answers_predictions_and_says_so() {
    let app = TestApp::spawn_with(|s| s.engine = onnxruntime_engine()).await;
    let model = json_with(app.model(Some(&app.token)).await, StatusCode::OK).await;
    assert_eq!(model["engine"], "onnxruntime");
    assert_eq!(model["precision"], "fp32");

    let body = json_with(app.predict_raw(photo("chelsea.png")).await, StatusCode::OK).await;
    let score = body["score"].as_f64().expect("score");
    let expected = expected_photo_score("chelsea.png");
    assert!(
        (score - expected).abs() <= 1e-5,
        "onnxruntime {score} vs reference {expected}"
    );
    let id = app
        .upload_as(&app.token, "rocket.jpg", photo("rocket.jpg"))
        .await;
    json_with(app.predict_stored(id).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_missing_onnxruntime_library_fails_at_start_naming_ort_dylib_path() {
    let mut settings = settings("http://127.0.0.1:9".to_owned());
    settings.engine = EngineSettings {
        kind: EngineKind::OnnxRuntime,
        onnxruntime_library: Some("/nonexistent/libonnxruntime.so".into()),
    };
    let err = Application::build_with_verifier(settings, Arc::new(TestKeys::generate().verifier()))
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    assert!(
        message.contains("/nonexistent/libonnxruntime.so"),
        "{message}"
    );
}

/// The binary started with `vars` in an empty working folder (no `./.venv` there), expected to
/// refuse: its exit code and what it printed on stderr.
fn refused_start(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = TestKeys::generate();
    let key_file = dir.path().join("jwt-public.pem");
    std::fs::write(&key_file, keys.public_pem()).expect("write key");
    let mut command = Command::new(env!("CARGO_BIN_EXE_inference_service"));
    command
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("INFERENCE_ENGINE")
        .env_remove("ORT_DYLIB_PATH")
        .env("LISTEN_ADDR", testkit::free_addr().to_string())
        .env("MODEL_DIR", tiny_dir())
        .env("JWT_PUBLIC_KEY_FILE", &key_file)
        .env("REVOCATIONS_URL", "none")
        .env("IMAGES_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start the inference_service binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not refuse to start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_file_that_is_not_onnxruntime_is_refused_at_start_with_an_exit_code_not_a_crash() {
    let not_a_library = tiny_dir().join("manifest.json");
    let (code, stderr) = refused_start(&[
        ("INFERENCE_ENGINE", "onnxruntime"),
        (
            "ORT_DYLIB_PATH",
            not_a_library.to_str().expect("utf-8 path"),
        ),
    ]);
    assert_eq!(
        code,
        Some(1),
        "an exit code, not a signal; stderr: {stderr}"
    );
    assert!(stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    assert!(stderr.contains("cannot be loaded"), "{stderr}");
}

#[test]
fn the_onnxruntime_engine_without_a_library_is_refused_naming_ort_dylib_path() {
    let (code, stderr) = refused_start(&[("INFERENCE_ENGINE", "onnxruntime")]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    assert!(stderr.contains("cargo xtask model"), "{stderr}");
}

#[test]
fn an_unknown_engine_is_refused_naming_inference_engine() {
    let (code, stderr) = refused_start(&[("INFERENCE_ENGINE", "pytorch")]);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(stderr.contains("INFERENCE_ENGINE"), "{stderr}");
    assert!(stderr.contains("onnxruntime"), "{stderr}");
}
