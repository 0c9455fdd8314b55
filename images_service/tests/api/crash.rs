//! The real binary killed with SIGKILL in the middle of an upload: after a restart there is no
//! row without its blob, no orphan blob, and uploads work again.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers::{files_under, metric_value, png, Backend, TestKeys};

/// The service binary as a child process, killed when dropped.
struct Service {
    child: Child,
    address: String,
    addr: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `images_service serve` on `addr` with the store under `dir`, logging to `log`.
fn serve(
    dir: &Path,
    database_url: &str,
    key_file: &Path,
    addr: SocketAddr,
    log: std::fs::File,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_images_service"));
    command
        .arg("serve")
        .env("LISTEN_ADDR", addr.to_string())
        .env("INSTANCE_NAME", "images-crash")
        .env("DATABASE_URL", database_url)
        .env(
            "BLOB_STORE_URL",
            format!("file://{}", dir.join("blobs").display()),
        )
        .env("JWT_PUBLIC_KEY_FILE", key_file)
        // No users_service here to serve revocations.
        .env("REVOCATIONS_URL", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    command
}

async fn start(dir: &Path, database_url: &str, key_file: &Path, run: u32) -> Service {
    let addr = testkit::free_addr();
    let log = std::fs::File::create(dir.join(format!("service-{run}.log"))).expect("log file");
    let child = serve(dir, database_url, key_file, addr, log)
        .env("MAX_UPLOAD_BYTES", (256 * 1024 * 1024).to_string())
        .env("RUST_LOG", "info")
        .spawn()
        .expect("start the images_service binary");
    let service = Service {
        child,
        address: format!("http://{addr}"),
        addr,
    };
    testkit::wait_until_ready(&format!("{}/readyz", service.address)).await;
    service
}

/// Starts the binary expecting it to refuse: waits for its exit and returns its log.
async fn start_refused(dir: &Path, database_url: &str, key_file: &Path, run: u32) -> String {
    let log_path = dir.join(format!("service-{run}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = serve(dir, database_url, key_file, testkit::free_addr(), log)
        .spawn()
        .expect("start the images_service binary");
    let mut status = None;
    testkit::eventually("the service exits", Duration::from_secs(30), || {
        status = child.try_wait().expect("try_wait");
        std::future::ready(status.is_some())
    })
    .await;
    assert!(
        !status.expect("exited").success(),
        "the service should refuse to start"
    );
    std::fs::read_to_string(log_path).expect("log")
}

/// Sends the start of a large upload and keeps the connection open.
async fn begin_upload(addr: SocketAddr, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let boundary = "CRASHBOUNDARY";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: images.localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    let mut part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    part.extend_from_slice(&png(64, 64, 9));
    part.resize(part.len() + 1024 * 1024, 0);
    stream
        .write_all(format!("{:x}\r\n", part.len()).as_bytes())
        .await
        .expect("chunk size");
    stream.write_all(&part).await.expect("chunk");
    stream.write_all(b"\r\n").await.expect("chunk end");
    stream.flush().await.expect("flush");
    stream
}

/// Uploads `bytes` as `file_name`, expects 201 and returns the new image's id.
async fn upload(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    file_name: &str,
    bytes: &[u8],
) -> String {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_owned());
    let response = client
        .post(format!("{address}/upload"))
        .bearer_auth(token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("body");
    body["image_id"].as_str().expect("id").to_owned()
}

/// The stored bytes of image `id`.
async fn download(client: &reqwest::Client, address: &str, token: &str, id: &str) -> Vec<u8> {
    let response = client
        .get(format!("{address}/images/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    response.bytes().await.expect("bytes").to_vec()
}

async fn a_crash_mid_upload_leaves_no_orphans_and_uploads_work_after_restart(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = TestKeys::generate();
    let key_file = dir.path().join("jwt-public.pem");
    std::fs::write(&key_file, keys.public_pem()).expect("write key");
    let database_url = testkit::database_url(backend, &dir.path().join("images.db")).await;
    let user = uuid::Uuid::new_v4();
    let token = keys.token(user, 600);
    let client = reqwest::Client::new();
    let store = dir.path().join("blobs");

    let first = start(dir.path(), &database_url, &key_file, 1).await;
    let kept = png(50, 50, 1);
    let kept_id = upload(&client, &first.address, &token, "a.png", &kept).await;

    let _connection = begin_upload(first.addr, &token).await;
    testkit::eventually("a temporary blob appears", Duration::from_secs(20), || {
        std::future::ready(files_under(&store).iter().any(|f| f.starts_with("tmp/")))
    })
    .await;
    let mut first = first;
    first.child.kill().expect("SIGKILL the service");
    first.child.wait().expect("reap");
    // What else a crash can leave: a committed blob whose row was never written, and a finished
    // temporary that was never committed.
    std::fs::write(
        store.join("blobs").join(uuid::Uuid::now_v7().to_string()),
        b"orphan",
    )
    .expect("orphan");
    std::fs::write(
        store
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string()),
        b"stale",
    )
    .expect("stale");
    assert!(files_under(&store).len() >= 4, "{:?}", files_under(&store));

    let second = start(dir.path(), &database_url, &key_file, 2).await;
    assert_eq!(
        metric_value(&client, &second.address, "images_orphans_swept_total").await,
        3.0
    );
    assert_eq!(
        files_under(&store),
        vec![format!("blobs/{kept_id}")],
        "only the committed image's blob is left"
    );

    let page: Value = client
        .get(format!("{}/images", second.address))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("page");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["image_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![kept_id.as_str()],
        "every row has its blob and vice versa"
    );
    let bytes = download(&client, &second.address, &token, &kept_id).await;
    assert_eq!(bytes, kept);

    let fresh = png(70, 20, 2);
    let fresh_id = upload(&client, &second.address, &token, "b.png", &fresh).await;
    let bytes = download(&client, &second.address, &token, &fresh_id).await;
    assert_eq!(bytes, fresh);
}

testkit::on_both_databases!(a_crash_mid_upload_leaves_no_orphans_and_uploads_work_after_restart);

/// A wrong or empty database pointed at a store full of images must not make the start-up sweep
/// take every image for an orphan: the service refuses to start, naming the variable, and every
/// blob stays. Its own database still starts it, with the image intact.
async fn a_database_never_used_with_the_store_refuses_to_start_and_deletes_nothing(
    backend: Backend,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = TestKeys::generate();
    let key_file = dir.path().join("jwt-public.pem");
    std::fs::write(&key_file, keys.public_pem()).expect("write key");
    let database_url = testkit::database_url(backend, &dir.path().join("images.db")).await;
    let token = keys.token(uuid::Uuid::new_v4(), 600);
    let client = reqwest::Client::new();
    let store = dir.path().join("blobs");

    let first = start(dir.path(), &database_url, &key_file, 1).await;
    let kept = png(40, 30, 3);
    let kept_id = upload(&client, &first.address, &token, "a.png", &kept).await;
    drop(first);

    let empty = testkit::database_url(backend, &dir.path().join("empty.db")).await;
    let log = start_refused(dir.path(), &empty, &key_file, 2).await;
    assert!(
        log.contains("DATABASE_URL") && log.contains("never used with the blob store"),
        "the refusal should name the variable: {log}"
    );
    assert_eq!(files_under(&store), vec![format!("blobs/{kept_id}")]);

    let again = start(dir.path(), &database_url, &key_file, 3).await;
    assert_eq!(
        download(&client, &again.address, &token, &kept_id).await,
        kept
    );
}

testkit::on_both_databases!(
    a_database_never_used_with_the_store_refuses_to_start_and_deletes_nothing
);
