//! The test harness: a spawned service with its own database and blob directory, a signing key
//! the service trusts, images made on the fly, and one method per endpoint.

use std::{
    io::Cursor as IoCursor,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use common::{
    config::{ImageLimits, LogFormat, ServerSettings},
    service::Service,
};
use image::{ImageFormat, RgbImage, RgbaImage};
use images_service::{config::Settings, startup::Application};
use reqwest::{multipart, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};
use uuid::Uuid;

pub use testkit::{Backend, TestKeys};

/// The upload limit tests run with: small, so over-limit uploads are quick.
pub const TEST_MAX_UPLOAD: u64 = 2 * 1024 * 1024;

/// A user with a valid token.
#[derive(Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
}

/// A running images_service with its own database and blob directory.
pub struct TestApp {
    pub address: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub keys: TestKeys,
    pub user: TestUser,
    pub store_dir: PathBuf,
    pub dir: TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(
            backend,
            ImageLimits {
                max_upload_bytes: TEST_MAX_UPLOAD,
                ..ImageLimits::default()
            },
        )
        .await
    }

    pub async fn spawn_with(backend: Backend, limits: ImageLimits) -> Self {
        common::telemetry::init(LogFormat::Pretty);
        let dir = tempfile::tempdir().expect("tempdir");
        let store_dir = dir.path().join("store").join("blobs");
        let settings = Settings {
            server: ServerSettings {
                listen_addr: "127.0.0.1:0".parse().expect("addr"),
                instance_name: "images-test".to_owned(),
                log_format: LogFormat::Pretty,
                max_in_flight: 64,
                request_timeout: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(1),
                header_timeout: Duration::from_secs(10),
                body_rate: common::config::BodyRate::default(),
            },
            database_url: testkit::database_url(backend, &dir.path().join("images.db"))
                .await
                .into(),
            blob_store_url: format!("file://{}", store_dir.display()),
            limits,
            blob_cache_bytes: images_service::config::DEFAULT_BLOB_CACHE_BYTES,
        };
        let keys = TestKeys::generate();
        let application = Application::build_with_verifier(settings, Arc::new(keys.verifier()))
            .await
            .expect("build the service");
        let addr = application.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let address = format!("http://{addr}");
        let client = reqwest::Client::new();
        testkit::wait_until_ready(&format!("{address}/readyz")).await;
        let user = new_user(&keys);
        Self {
            address,
            addr,
            client,
            keys,
            user,
            store_dir,
            dir,
            _stop: stop,
        }
    }

    /// Another user with a valid token.
    pub fn other_user(&self) -> TestUser {
        new_user(&self.keys)
    }

    pub async fn upload_as(&self, user: &TestUser, file_name: &str, bytes: Vec<u8>) -> Response {
        let part = multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = multipart::Form::new().part("file", part);
        self.client
            .post(format!("{}/upload", self.address))
            .bearer_auth(&user.token)
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    pub async fn upload(&self, file_name: &str, bytes: Vec<u8>) -> Response {
        self.upload_as(&self.user, file_name, bytes).await
    }

    /// Uploads and expects 201; returns the body.
    pub async fn upload_ok(&self, file_name: &str, bytes: Vec<u8>) -> Value {
        let response = self.upload(file_name, bytes).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "upload of {file_name}"
        );
        response.json().await.expect("upload body")
    }

    pub async fn list(&self, user: &TestUser, query: &str) -> Response {
        self.get_path(user, &format!("/images{query}")).await
    }

    pub async fn download(&self, user: &TestUser, id: &str) -> Response {
        self.get_path(user, &format!("/images/{id}")).await
    }

    pub async fn meta(&self, user: &TestUser, id: &str) -> Response {
        self.get_path(user, &format!("/images/{id}/meta")).await
    }

    pub async fn delete(&self, user: &TestUser, id: &str) -> Response {
        self.client
            .delete(format!("{}/images/{id}", self.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("delete request")
    }

    pub async fn get_path(&self, user: &TestUser, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("request")
    }

    /// The value of one sample in `/metrics`, e.g. `images_upload_rejections_total{reason="empty"`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        metric_value(&self.client, &self.address, prefix).await
    }

    /// The whole `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.client, &self.address).await
    }

    /// Every file under the blob directory, relative to it.
    pub fn stored_files(&self) -> Vec<String> {
        files_under(&self.store_dir)
    }
}

fn new_user(keys: &TestKeys) -> TestUser {
    let id = Uuid::new_v4();
    TestUser {
        id,
        token: keys.token(id, 600),
    }
}

/// The `/metrics` page of the service at `address`.
pub async fn metrics_text(client: &reqwest::Client, address: &str) -> String {
    client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

pub async fn metric_value(client: &reqwest::Client, address: &str, prefix: &str) -> f64 {
    let text = metrics_text(client, address).await;
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every file under the blob directory `dir`, relative to it, sorted; the store's installation
/// mark (written once at the first start) aside.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.retain(|file| file != "installation");
    out.sort();
    out
}

/// A picture whose pixels depend on `seed`, so different seeds give different bytes.
pub fn picture(width: u32, height: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(3) ^ seed,
            (y as u8).wrapping_add(seed),
            seed.wrapping_mul(7),
        ])
    })
}

/// `picture(width, height, seed)` encoded as `format`.
pub fn encoded(format: ImageFormat, width: u32, height: u32, seed: u8) -> Vec<u8> {
    let mut out = IoCursor::new(Vec::new());
    let picture = picture(width, height, seed);
    if format == ImageFormat::Gif {
        RgbaImage::from_fn(width, height, |x, y| {
            let p = picture.get_pixel(x, y).0;
            image::Rgba([p[0], p[1], p[2], 255])
        })
        .write_to(&mut out, format)
        .expect("encode gif");
    } else {
        picture.write_to(&mut out, format).expect("encode");
    }
    out.into_inner()
}

pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    encoded(ImageFormat::Png, width, height, seed)
}

pub fn jpeg(width: u32, height: u32, seed: u8) -> Vec<u8> {
    encoded(ImageFormat::Jpeg, width, height, seed)
}

/// What a raw streamed upload saw.
pub struct StreamOutcome {
    /// The response status, when one arrived before the connection closed.
    pub status: Option<u16>,
    /// Body bytes the client managed to hand to the connection.
    pub sent: u64,
}

/// Sends a chunked multipart upload of `total` file bytes (a PNG signature, then zeros) over a raw
/// connection, without `Content-Length`, writing until the server stops taking bytes.
pub async fn stream_raw_upload(addr: SocketAddr, token: &str, total: u64) -> StreamOutcome {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let token = token.to_owned();
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        let boundary = "XBOUNDARYX";
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: images.localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        if writer.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let mut first = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        first.extend_from_slice(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
        let zeros = vec![0u8; 64 * 1024];
        let mut file_bytes = 8u64;
        let mut next: Vec<u8> = first;
        loop {
            let frame = [
                format!("{:x}\r\n", next.len()).into_bytes(),
                next,
                b"\r\n".to_vec(),
            ]
            .concat();
            if writer.write_all(&frame).await.is_err() {
                return sent;
            }
            sent += frame.len() as u64;
            if file_bytes >= total {
                let _ = writer.write_all(b"0\r\n\r\n").await;
                return sent;
            }
            let n = (total - file_bytes).min(zeros.len() as u64) as usize;
            file_bytes += n as u64;
            next = zeros[..n].to_vec();
        }
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buffer[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer and no close within 60 s: the server kept reading"
    );
    drop(reader);
    let sent = match tokio::time::timeout(Duration::from_secs(10), sender).await {
        Ok(joined) => joined.expect("sender task"),
        Err(_) => panic!("the server neither read nor closed the connection"),
    };
    let status = String::from_utf8_lossy(&response)
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok());
    StreamOutcome { status, sent }
}
