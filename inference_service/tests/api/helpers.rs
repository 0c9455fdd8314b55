//! The test harness: images_service and inference_service on free ports, trusting one test
//! signing key; images made on the fly; one method per endpoint.

use std::{io::Cursor, path::PathBuf, sync::Arc, time::Duration};

use common::{
    auth::TokenVerifier,
    config::{ImageLimits, LogFormat, ServerSettings},
    service::Service,
};
use image::{ImageFormat, RgbImage};
use inference_service::{
    config::{EngineSettings, PoolSettings, Settings},
    model::EngineKind,
    predictor::Predictor,
    startup::Application,
};
use reqwest::{multipart, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The upload limit the tests run with: small, so over-limit bodies are quick.
pub const TEST_MAX_UPLOAD: u64 = 2 * 1024 * 1024;

/// The committed tiny model.
pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

#[path = "../support/onnxruntime.rs"]
mod onnxruntime;
pub use onnxruntime::onnxruntime_library;

/// Settings for the onnxruntime engine with the library of [`onnxruntime_library`].
pub fn onnxruntime_engine() -> EngineSettings {
    EngineSettings {
        kind: EngineKind::OnnxRuntime,
        onnxruntime_library: Some(onnxruntime_library()),
    }
}

/// A photo fixture's bytes.
pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/photos")
            .join(name),
    )
    .expect("photo fixture")
}

/// The tiny model's reference score for a photo (Pillow preprocessing, onnxruntime).
pub fn expected_photo_score(name: &str) -> f64 {
    let text = std::fs::read_to_string(tiny_dir().join("expected.json")).expect("expected.json");
    let expected: Value = serde_json::from_str(&text).expect("json");
    expected["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .find(|p| p["file"] == name)
        .and_then(|p| p["score"].as_f64())
        .expect("photo score")
}

/// An encoded image of `width × height`.
pub fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 99])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

pub use testkit::TestKeys;

fn server_settings(name: &str) -> ServerSettings {
    ServerSettings {
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        instance_name: name.to_owned(),
        log_format: LogFormat::Pretty,
        max_in_flight: 64,
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
        header_timeout: Duration::from_secs(10),
        body_rate: common::config::BodyRate::default(),
    }
}

/// The inference settings the tests start from: tiny model, small upload limit.
pub fn settings(images_url: String) -> Settings {
    Settings {
        server: server_settings("inference-test"),
        model_dir: tiny_dir(),
        images_url,
        threshold: None,
        pool: PoolSettings {
            workers: 2,
            threads: 1,
            queue: 4,
            downloads: 2,
        },
        engine: EngineSettings::default(),
        limits: ImageLimits {
            max_upload_bytes: TEST_MAX_UPLOAD,
            ..ImageLimits::default()
        },
        cache_entries: 100,
    }
}

/// A running images_service with a SQLite database and blob folder in a temporary directory.
pub struct Images {
    pub address: String,
    _dir: TempDir,
    _stop: oneshot::Sender<()>,
}

impl Images {
    pub async fn spawn(verifier: Arc<TokenVerifier>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = images_service::config::Settings {
            server: server_settings("images-test"),
            database_url: format!("sqlite://{}/images.db", dir.path().display()).into(),
            blob_store_url: format!("file://{}/blobs", dir.path().display()),
            limits: ImageLimits {
                max_upload_bytes: TEST_MAX_UPLOAD,
                ..ImageLimits::default()
            },
            blob_cache_bytes: images_service::config::DEFAULT_BLOB_CACHE_BYTES,
        };
        let application =
            images_service::startup::Application::build_with_verifier(settings, verifier)
                .await
                .expect("build images_service");
        let address = format!("http://{}", application.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        testkit::wait_until_ready(&format!("{address}/readyz")).await;
        Self {
            address,
            _dir: dir,
            _stop: stop,
        }
    }
}

/// A running inference_service (and the images_service it fetches from).
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub keys: TestKeys,
    pub token: String,
    pub images: Images,
    pub predictor: Arc<Predictor>,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    /// The service with the default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The service with settings adjusted by `adjust` (images_url is already set).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        common::telemetry::init(LogFormat::Pretty);
        let keys = TestKeys::generate();
        let images = Images::spawn(Arc::new(keys.verifier())).await;
        let mut settings = settings(images.address.clone());
        adjust(&mut settings);
        let application = Application::build_with_verifier(settings, Arc::new(keys.verifier()))
            .await
            .expect("build inference_service");
        let address = format!("http://{}", application.local_addr().expect("addr"));
        let predictor = application.predictor();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        testkit::wait_until_ready(&format!("{address}/readyz")).await;
        let token = keys.token(Uuid::new_v4(), 600);
        Self {
            address,
            client,
            keys,
            token,
            images,
            predictor,
            _stop: stop,
        }
    }

    /// Uploads to images_service as `token`; returns the image id.
    pub async fn upload_as(&self, token: &str, file_name: &str, bytes: Vec<u8>) -> Uuid {
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        );
        let response = self
            .client
            .post(format!("{}/upload", self.images.address))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "upload of {file_name}"
        );
        let body: Value = response.json().await.expect("upload body");
        body["image_id"]
            .as_str()
            .expect("image_id")
            .parse()
            .expect("uuid")
    }

    pub async fn predict_stored_as(&self, token: Option<&str>, image_id: &str) -> Response {
        let mut request = self
            .client
            .get(format!("{}/predict/{image_id}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET /predict/{id}")
    }

    pub async fn predict_stored(&self, image_id: Uuid) -> Response {
        self.predict_stored_as(Some(&self.token), &image_id.to_string())
            .await
    }

    /// `POST /predict` with a raw body of `content_type`.
    pub async fn predict_raw_as(
        &self,
        token: Option<&str>,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}/predict", self.address))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST /predict")
    }

    pub async fn predict_raw(&self, bytes: Vec<u8>) -> Response {
        self.predict_raw_as(Some(&self.token), "application/octet-stream", bytes)
            .await
    }

    /// `POST /predict` with multipart field `field`.
    pub async fn predict_multipart(&self, field: &str, bytes: Vec<u8>) -> Response {
        let form = multipart::Form::new().part(
            field.to_owned(),
            multipart::Part::bytes(bytes).file_name("photo"),
        );
        self.client
            .post(format!("{}/predict", self.address))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("POST /predict multipart")
    }

    pub async fn model(&self, token: Option<&str>) -> Response {
        let mut request = self.client.get(format!("{}/model", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET /model")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    /// How many `GET` requests of `route` (a route template, as `/images/{id}`) images_service
    /// answered, whatever their status.
    pub async fn images_requests(&self, route: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.images.address))
            .send()
            .await
            .expect("images /metrics")
            .text()
            .await
            .expect("metrics text");
        let route = format!("route=\"{route}\"");
        text.lines()
            .filter(|line| line.starts_with("http_requests_total{"))
            .filter(|line| line.contains("method=\"GET\"") && line.contains(&route))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }
}

/// A response's JSON body after checking its status.
pub async fn json_with(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Asserts a problem+json answer of `status` whose detail mentions `words`.
pub async fn assert_problem(response: Response, status: StatusCode, words: &str) -> Value {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    let body = json_with(response, status).await;
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.to_lowercase().contains(&words.to_lowercase()),
        "detail {detail:?} lacks {words:?}"
    );
    body
}

/// The value of the sample of `name` whose labels include every `key="value"` of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let Some(rest) = series.strip_prefix(name) else {
                return false;
            };
            (rest.is_empty() || rest.starts_with('{'))
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}
