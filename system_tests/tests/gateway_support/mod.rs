//! Helpers for the end-to-end gateway tests: one shared native stack on free ports, HTTP clients
//! that reach the public hosts through the real Traefik, a metrics reader and a header echo
//! backend.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xtask::stack::{Ports, Stack, StackOptions, USERS_NAMES};

pub const ADMIN_USERNAME: &str = "gateway-admin";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// Small enough that a bounded login storm saturates the three replicas.
pub const MAX_IN_FLIGHT: &str = "2";
pub const PUBLIC_HOSTS: [&str; 5] = [
    "users.localhost",
    "images.localhost",
    "inference.localhost",
    "error.localhost",
    "unknown.localhost",
];

/// The shared stack and the temporary directory it lives in.
pub struct Shared {
    pub stack: Stack,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Mutex<Option<Result<Shared, String>>>> = OnceLock::new();

/// Options for a test stack on free ports in `dir`.
pub fn options(dir: &std::path::Path) -> Result<StackOptions> {
    let bin_dir = system_tests::service_binaries()?;
    let mut env_overrides = BTreeMap::new();
    for name in USERS_NAMES {
        let mut env = BTreeMap::from([
            ("ADMIN_USERNAME".to_owned(), ADMIN_USERNAME.to_owned()),
            (
                "ADMIN_EMAIL".to_owned(),
                "gateway-admin@example.com".to_owned(),
            ),
            ("ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
            // The storm logs in the same user from one address many times.
            ("LOGIN_RATE_PER_MINUTE_IP".to_owned(), "100000".to_owned()),
            ("LOGIN_RATE_PER_MINUTE_USER".to_owned(), "100000".to_owned()),
            (
                "REGISTER_RATE_PER_MINUTE_IP".to_owned(),
                "100000".to_owned(),
            ),
        ]);
        if name != "users-backup" {
            env.insert("MAX_IN_FLIGHT".to_owned(), MAX_IN_FLIGHT.to_owned());
        }
        env_overrides.insert(name.to_owned(), env);
    }
    // The storms log in from one address far beyond the gateway's own limits; those limits are
    // tested on a gateway of their own.
    env_overrides.insert("traefik".to_owned(), system_tests::gateway_limits_lifted());
    Ok(StackOptions {
        data_dir: dir.to_path_buf(),
        bin_dir,
        model_dir: system_tests::resmem_model_dir()?,
        ports: Ports::free()?,
        env_overrides,
        with_prometheus: false,
    })
}

/// Runs `test` against the shared stack, starting it on first use.
pub fn with_stack(test: impl FnOnce(&mut Stack) -> Result<()>) -> Result<()> {
    let cell = SHARED.get_or_init(|| Mutex::new(None));
    let mut guard = cell
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if guard.is_none() {
        let started = (|| {
            let dir = tempfile::Builder::new()
                .prefix("forgettable-e2e-")
                .tempdir()?;
            let stack = Stack::start(options(dir.path())?)?;
            Ok::<_, anyhow::Error>(Shared { stack, _dir: dir })
        })();
        *guard = Some(started.map_err(|e| format!("{e:#}")));
    }
    match guard.as_mut() {
        Some(Ok(shared)) => test(&mut shared.stack),
        Some(Err(e)) => bail!("the shared test stack did not start: {e}"),
        None => bail!("the shared test stack is missing"),
    }
}

/// Stops the shared stack (statics are never dropped, so the harness calls this at the end).
pub fn shutdown() {
    if let Some(cell) = SHARED.get() {
        let mut guard = cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.take();
    }
}

/// The port the Compose and Swarm gateways serve HTTPS on; the native gateway speaks plain HTTP.
pub const HTTPS_PORT: u16 = 443;

/// A client that reaches every public host on the gateway's port, optionally from `local`. On
/// the HTTPS port it trusts the local certificate authority of `deploy/gen-secrets.sh` only.
pub fn client(ports: &Ports, local: Option<IpAddr>) -> Result<Client> {
    client_within(ports, local, Duration::from_secs(30))
}

/// [`client`], giving up on an answer after `timeout`.
pub fn client_within(ports: &Ports, local: Option<IpAddr>, timeout: Duration) -> Result<Client> {
    let mut builder = Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    for host in PUBLIC_HOSTS {
        builder = builder.resolve(host, SocketAddr::from(([127, 0, 0, 1], ports.web)));
    }
    if ports.web == HTTPS_PORT {
        let ca = xtask::tools::root().join(xtask::docker::CA_CERTIFICATE);
        let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .https_only(true);
    }
    if let Some(local) = local {
        builder = builder.local_address(local);
    }
    Ok(builder.build()?)
}

/// The answer's Content-Type, or "" without one.
pub fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `http://<host>:<web port><path>`, or `https://<host><path>` on the HTTPS port.
pub fn url(ports: &Ports, host: &str, path: &str) -> String {
    if ports.web == HTTPS_PORT {
        format!("https://{host}{path}")
    } else {
        format!("http://{host}:{}{path}", ports.web)
    }
}

pub fn served_by(response: &Response) -> String {
    response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A fresh, unique user name.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}{}", nanos % 10_000_000_000)
}

/// Registers a user through the gateway and returns its name.
pub fn register(
    client: &Client,
    ports: &Ports,
    username: &str,
    password: &str,
) -> Result<Response> {
    Ok(client
        .post(url(ports, "users.localhost", "/register"))
        .json(&json!({ "username": username, "email": format!("{username}@example.com"), "password": password }))
        .send()?)
}

/// Logs in through the gateway and returns the access token.
pub fn login(client: &Client, ports: &Ports, username: &str, password: &str) -> Result<String> {
    let response = client
        .post(url(ports, "users.localhost", "/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()?;
    let status = response.status();
    let body: Value = response.json().context("login answer is not JSON")?;
    if status != 200 {
        bail!("login of {username} answered {status}: {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("login answer has no token")
}

/// A new user with a token.
pub fn new_user(client: &Client, ports: &Ports, prefix: &str) -> Result<(String, String)> {
    let username = unique(prefix);
    let password = "correct horse battery";
    let response = register(client, ports, &username, password)?;
    if response.status() != 201 {
        bail!(
            "register answered {}: {}",
            response.status(),
            response.text().unwrap_or_default()
        );
    }
    let token = login(client, ports, &username, password)?;
    Ok((username, token))
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn eventually(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match condition() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(format!("{e:#}")),
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: not within {timeout:?} (last error: {})",
                last_error.unwrap_or_else(|| "none".into())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PNG photo-like gradient for uploads.
pub fn sample_png() -> Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

/// An HTTP backend standing in for every users replica and images: every path answers the
/// identity headers it received as JSON, with the size of the body it read (`body_bytes`).
pub struct EchoBackend {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl EchoBackend {
    pub fn start() -> Result<Self> {
        use axum::{http::HeaderMap, Router};
        async fn echo(headers: HeaderMap, body: axum::body::Bytes) -> axum::Json<Value> {
            let get = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let aliases: Vec<String> = headers
                .keys()
                .map(|k| k.as_str().to_owned())
                .filter(|k| k.starts_with("x_user") || k.starts_with("x.user"))
                .collect();
            axum::Json(json!({
                "x-user-id": get("x-user-id"),
                "x-user-name": get("x-user-name"),
                "x-user-role": get("x-user-role"),
                "aliases": aliases,
                "body_bytes": body.len(),
            }))
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let app = Router::new().fallback(echo);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            _runtime: runtime,
        })
    }
}

/// A server address that stops answering the way a vanished container's does: until
/// [`BlackHole::go_dark`] it answers every request 200 (health checks find it up); after it, it
/// accepts no connection and its full accept queue makes the kernel drop every new SYN, so a
/// connect waits for its timeout instead of being refused.
pub struct BlackHole {
    pub port: u16,
    dark: Option<tokio::sync::oneshot::Sender<()>>,
    /// Told once the accept loop has stopped: connections made after it stay unaccepted.
    stopped: std::sync::mpsc::Receiver<()>,
    queue: Vec<std::net::TcpStream>,
    _runtime: tokio::runtime::Runtime,
}

impl BlackHole {
    pub fn start() -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        let (dark, mut darkened) = tokio::sync::oneshot::channel::<()>();
        let (stop_told, stopped) = std::sync::mpsc::channel::<()>();
        let listener = runtime.block_on(async {
            socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
            // Backlog 1: a queue of two unaccepted connections is full.
            socket.listen(1)
        })?;
        let port = listener.local_addr()?.port();
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut darkened => break,
                    accepted = listener.accept() => {
                        let Ok((mut stream, _)) = accepted else { continue };
                        tokio::spawn(async move {
                            let mut buf = [0u8; 4096];
                            let _ = stream.read(&mut buf).await;
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                        });
                    }
                }
            }
            let _ = stop_told.send(());
            // Keep the socket listening, never accepting, for as long as the runtime lives.
            std::future::pending::<()>().await;
            drop(listener);
        });
        Ok(Self {
            port,
            dark: Some(dark),
            stopped,
            queue: Vec::new(),
            _runtime: runtime,
        })
    }

    /// Stops accepting and fills the accept queue; returns once a connect to the port times out.
    pub fn go_dark(&mut self) -> Result<()> {
        if let Some(dark) = self.dark.take() {
            let _ = dark.send(());
            // Filling the queue before the loop has stopped would leave room in it: the loop
            // could still accept the filling connections, and a later connect would then be
            // taken into the queue and never answered instead of timing out.
            self.stopped
                .recv_timeout(Duration::from_secs(10))
                .context("the black hole's accept loop did not stop")?;
        }
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        // Nothing accepts any more: the queue fills with the first connects, and the next one
        // times out. Bounded: the queue holds two.
        for _ in 0..20 {
            match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
                Ok(stream) => self.queue.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(()),
                Err(e) => bail!("connecting to the black hole: {e}"),
            }
        }
        bail!(
            "port {} still accepts connections after 20 connects",
            self.port
        )
    }
}

/// nginx and Traefik alone on free ports in `dir`, with `echo` as every backend the gateway names
/// and `traefik_env` added to Traefik's environment last (so a test can give the gateway values
/// the launcher would refuse). Needs neither the service binaries nor the model.
pub fn gateway_alone(
    dir: &std::path::Path,
    echo: &EchoBackend,
    traefik_env: &[(&str, &str)],
) -> Result<Stack> {
    let backend = format!("http://127.0.0.1:{}", echo.port);
    let mut env: BTreeMap<String, String> = [
        "USERS_1_URL",
        "USERS_2_URL",
        "USERS_3_URL",
        "USERS_BACKUP_URL",
        "AUTH_GROUP_URLS",
        "IMAGES_URL",
        "INFERENCE_URL",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), backend.clone()))
    .collect();
    env.extend(
        traefik_env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    let opts = StackOptions {
        data_dir: dir.to_path_buf(),
        bin_dir: dir.to_path_buf(),
        model_dir: dir.to_path_buf(),
        ports: Ports::free()?,
        env_overrides: BTreeMap::from([("traefik".to_owned(), env)]),
        with_prometheus: false,
    };
    Stack::start_only(opts, &["errors", "traefik"])
}

// ---------------------------------------------------------------------------------------------
// Promises every deployment keeps, checked the same way natively and on Docker Compose.

/// 30 anonymous requests split 10/10/10 (±1) over users-1..3.
pub fn anonymous_requests_are_spread_evenly(ports: &Ports) -> Result<()> {
    let client = client(ports, None)?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let response = client
            .get(url(ports, "users.localhost", "/.well-known/jwks.json"))
            .send()?;
        ensure!(
            response.status() == 200,
            "jwks answered {}",
            response.status()
        );
        *counts.entry(served_by(&response)).or_default() += 1;
    }
    println!("split of 30 anonymous requests: {counts:?}");
    for replica in ["users-1", "users-2", "users-3"] {
        let n = counts.get(replica).copied().unwrap_or(0);
        ensure!(
            (9..=11).contains(&n),
            "{replica} served {n} of 30: {counts:?}"
        );
    }
    Ok(())
}

/// The authenticated group of the native and Compose gateways.
pub const AUTH_GROUP: [&str; 2] = ["users-2", "users-3"];

/// Requests with a valid token are served by the members of `group` only, every one of them.
pub fn authenticated_requests_stay_in_the_group(ports: &Ports, group: &[&str]) -> Result<()> {
    let client = client(ports, None)?;
    let (username, token) = new_user(&client, ports, "group")?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..12 {
        let response = client
            .get(url(ports, "users.localhost", "/me"))
            .bearer_auth(&token)
            .send()?;
        ensure!(
            response.status() == 200,
            "/me answered {}",
            response.status()
        );
        *counts.entry(served_by(&response)).or_default() += 1;
        let me: Value = response.json()?;
        ensure!(
            me["username"] == username.as_str(),
            "/me is someone else: {me}"
        );
    }
    println!("authenticated requests: {counts:?}");
    ensure!(
        counts.keys().all(|k| group.contains(&k.as_str())),
        "authenticated requests left the group {group:?}: {counts:?}"
    );
    ensure!(
        counts.len() == group.len(),
        "every member of the group {group:?} should serve: {counts:?}"
    );
    Ok(())
}

/// Uploads a PNG and returns its image id.
pub fn upload(client: &Client, ports: &Ports, token: &str, png: Vec<u8>) -> Result<String> {
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(png)
            .file_name("gradient.png")
            .mime_str("image/png")?,
    );
    let uploaded = client
        .post(url(ports, "images.localhost", "/upload"))
        .bearer_auth(token)
        .multipart(form)
        .send()?;
    ensure!(
        uploaded.status() == 201,
        "upload answered {}: {}",
        uploaded.status(),
        uploaded.text().unwrap_or_default()
    );
    let uploaded: Value = uploaded.json()?;
    Ok(uploaded["image_id"]
        .as_str()
        .context("upload answer has no image_id")?
        .to_owned())
}

/// The SHA-256 of an image's bytes as downloaded.
pub fn download_sha256(
    client: &Client,
    ports: &Ports,
    token: &str,
    image_id: &str,
) -> Result<String> {
    let response = client
        .get(url(
            ports,
            "images.localhost",
            &format!("/images/{image_id}"),
        ))
        .bearer_auth(token)
        .send()?;
    ensure!(
        response.status() == 200,
        "download answered {}",
        response.status()
    );
    Ok(hex::encode(Sha256::digest(response.bytes()?)))
}

/// register → login → upload → predict → list → download → delete; returns the prediction.
pub fn user_journey(ports: &Ports) -> Result<Value> {
    let client = client(ports, None)?;
    let (_, token) = new_user(&client, ports, "journey")?;
    let png = sample_png()?;
    let image_id = upload(&client, ports, &token, png.clone())?;

    let predicted = client
        .get(url(
            ports,
            "inference.localhost",
            &format!("/predict/{image_id}"),
        ))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        predicted.status() == 200,
        "predict answered {}: {}",
        predicted.status(),
        predicted.text().unwrap_or_default()
    );
    let predicted: Value = predicted.json()?;
    ensure!(
        predicted["prediction"] == "forgettable" || predicted["prediction"] == "memorable",
        "prediction is {predicted}"
    );
    println!("prediction through the gateway: {predicted}");

    let listed: Value = client
        .get(url(ports, "images.localhost", "/images"))
        .bearer_auth(&token)
        .send()?
        .json()?;
    ensure!(
        listed.to_string().contains(&image_id),
        "the list does not show the upload: {listed}"
    );
    ensure!(
        download_sha256(&client, ports, &token, &image_id)? == hex::encode(Sha256::digest(&png)),
        "the downloaded bytes differ from the upload"
    );

    let deleted = client
        .delete(url(
            ports,
            "images.localhost",
            &format!("/images/{image_id}"),
        ))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        deleted.status() == 204,
        "delete answered {}",
        deleted.status()
    );
    let gone = client
        .get(url(
            ports,
            "images.localhost",
            &format!("/images/{image_id}/meta"),
        ))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        gone.status() == 404,
        "a deleted image answered {}",
        gone.status()
    );
    Ok(predicted)
}

/// With images_service stopped, images.localhost answers nginx's 503 page: HTML for browsers,
/// problem+json for API clients. The gateway notices within its health check's interval.
pub fn stopped_images_get_the_custom_503_page(ports: &Ports) -> Result<()> {
    let client = client(ports, None)?;
    eventually(
        Duration::from_secs(10),
        "images.localhost answers 503",
        || {
            Ok(client
                .get(url(ports, "images.localhost", "/images"))
                .send()?
                .status()
                == 503)
        },
    )?;
    let html = client
        .get(url(ports, "images.localhost", "/images"))
        .header("Accept", "text/html")
        .send()?;
    ensure!(html.status() == 503, "HTML request got {}", html.status());
    ensure!(
        html.headers()["content-type"]
            .to_str()?
            .starts_with("text/html"),
        "HTML page has the wrong type"
    );
    let page = html.text()?;
    ensure!(
        page.contains("503") && page.contains("Service unavailable"),
        "not the custom page: {page}"
    );
    let problem = client
        .get(url(ports, "images.localhost", "/images"))
        .header("Accept", "application/json")
        .header("X-Request-Id", "stopped-images-1")
        .send()?;
    ensure!(
        problem.status() == 503,
        "JSON request got {}",
        problem.status()
    );
    ensure!(
        problem.headers()["content-type"].to_str()? == "application/problem+json",
        "JSON answer has the wrong type"
    );
    // A client told to try again is told when; the request keeps the id its client gave it.
    let retry_after = problem
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    ensure!(
        retry_after
            .as_deref()
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|s| s > 0),
        "the 503 has no Retry-After in seconds: {retry_after:?}"
    );
    ensure!(
        problem.headers().get("x-request-id").map(|v| v.as_bytes()) == Some(b"stopped-images-1"),
        "the 503 lost the client's request id: {:?}",
        problem.headers().get("x-request-id")
    );
    let body: Value = problem.json()?;
    ensure!(
        body["status"] == 503 && body["request_id"] == "stopped-images-1",
        "problem document: {body}"
    );
    Ok(())
}

/// On the Compose and Swarm gateways: plain HTTP on port 80 answers with a permanent redirect to
/// the same URL over HTTPS, for every host; HTTPS answers carry HSTS, with a certificate that
/// chains to the local authority.
pub fn plain_http_redirects_to_https_which_carries_hsts() -> Result<()> {
    let plain = Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .resolve("users.localhost", SocketAddr::from(([127, 0, 0, 1], 80)))
        .resolve("unknown.localhost", SocketAddr::from(([127, 0, 0, 1], 80)))
        .build()?;
    for (method, url) in [
        (
            reqwest::Method::GET,
            "http://users.localhost/.well-known/jwks.json",
        ),
        (
            reqwest::Method::POST,
            "http://users.localhost/auth/login?from=plain",
        ),
        (reqwest::Method::GET, "http://unknown.localhost/anything"),
    ] {
        let response = plain.request(method.clone(), url).send()?;
        ensure!(
            [301, 308].contains(&response.status().as_u16()),
            "{method} {url} answered {} instead of a permanent redirect",
            response.status()
        );
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            location == url.replacen("http://", "https://", 1),
            "{method} {url} redirects to {location:?}"
        );
        ensure!(
            served_by(&response).is_empty(),
            "{method} {url} reached a service over plain HTTP"
        );
    }

    let ports = Ports {
        web: HTTPS_PORT,
        ..Ports::native_defaults()
    };
    let https = client(&ports, None)?;
    for (host, path, status) in [
        ("users.localhost", "/.well-known/jwks.json", 200),
        ("images.localhost", "/no-such-path", 404),
    ] {
        let response = https.get(url(&ports, host, path)).send()?;
        ensure!(
            response.status() == status,
            "https://{host}{path} answered {}",
            response.status()
        );
        let hsts = response
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            hsts.starts_with("max-age=31536000"),
            "https://{host}{path}: Strict-Transport-Security is {hsts:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bounded background traffic, for what must lose no request (a killed replica, a rolling update).

/// One request of a load: sends it and says which status answers it correctly.
pub type LoadRequest = fn(&Client, &Ports, usize) -> (reqwest::Result<Response>, u16);

/// GETs and POSTs alternately, neither limited by the login throttle: the published keys (200)
/// and a refresh with a bad token (401), whose body must survive a replica's death too.
pub fn get_or_post(client: &Client, ports: &Ports, n: usize) -> (reqwest::Result<Response>, u16) {
    if n % 2 == 1 {
        let answer = client
            .post(url(ports, "users.localhost", "/token/refresh"))
            .json(&json!({ "refresh_token": "not-a-token" }))
            .send();
        (answer, 401)
    } else {
        let answer = client
            .get(url(ports, "users.localhost", "/.well-known/jwks.json"))
            .send();
        (answer, 200)
    }
}

/// Traffic from `workers` threads, each sending at most `per_worker` requests and none after
/// `limit`, until [`Load::finish`]. A request fails when its answer is not the expected status
/// from a service (with X-Served-By), or when no answer comes.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failures: std::sync::Arc<Mutex<Vec<String>>>,
    workers: Vec<std::thread::JoinHandle<Result<()>>>,
}

/// What a [`Load`] sent, and which of its requests failed and how.
pub struct LoadReport {
    pub done: usize,
    pub failures: Vec<String>,
}

impl Load {
    pub fn start(
        ports: &Ports,
        workers: usize,
        per_worker: usize,
        limit: Duration,
        request: LoadRequest,
    ) -> Result<Load> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failures = std::sync::Arc::new(Mutex::new(Vec::new()));
        let deadline = Instant::now() + limit;
        let mut threads = Vec::new();
        for _ in 0..workers {
            let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
            let client = client(ports, None)?;
            let ports = ports.clone();
            threads.push(std::thread::spawn(move || -> Result<()> {
                for _ in 0..per_worker {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let (answer, expected) = request(&client, &ports, done.load(Ordering::Relaxed));
                    match answer {
                        Ok(r) if r.status() == expected && !served_by(&r).is_empty() => {}
                        Ok(r) => {
                            let what = format!(
                                "{} from {:?}: {}",
                                r.status(),
                                served_by(&r),
                                r.text().unwrap_or_default()
                            );
                            failures
                                .lock()
                                .map_err(|_| anyhow::anyhow!("lock"))?
                                .push(what);
                        }
                        Err(e) => {
                            failures
                                .lock()
                                .map_err(|_| anyhow::anyhow!("lock"))?
                                .push(format!("{e:#}"));
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        Ok(Load {
            stop,
            done,
            failures,
            workers: threads,
        })
    }

    /// Requests answered (well or not) so far.
    pub fn done(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `n` requests were sent, or `within` passed (then says so).
    pub fn wait_for(&self, n: usize, within: Duration) -> Result<()> {
        eventually(within, &format!("{n} requests of the load"), || {
            Ok(self.done() >= n)
        })
    }

    /// Stops the workers and reports.
    pub fn finish(self) -> Result<LoadReport> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for worker in self.workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        let failures = self
            .failures
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .clone();
        Ok(LoadReport {
            done: self.done.load(std::sync::atomic::Ordering::Relaxed),
            failures,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The harness of the Docker stack tests.

/// A test of a stack: its name and its body.
pub type StackTest = (&'static str, fn() -> Result<()>);

/// Runs a stack's tests one at a time, in order: `up` first, `down` last. A name filter
/// (`cargo xtask test -- journey`) may select tests between them without either: the stack is
/// brought up before them and taken down after them all the same.
pub fn run_stack_tests(
    up: StackTest,
    tests: Vec<StackTest>,
    down: StackTest,
) -> std::process::ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let trial = |(name, test): StackTest| {
        libtest_mimic::Trial::test(name, move || {
            test().map_err(|e| libtest_mimic::Failed::from(format!("{e:#}")))
        })
    };
    let filter = args.filter.clone().unwrap_or_default();
    let selects = |name: &str| name.contains(filter.as_str());
    let middle_selected = !filter.is_empty() && tests.iter().any(|(name, _)| selects(name));
    if middle_selected && !selects(up.0) {
        if let Err(e) = (up.1)() {
            eprintln!("the stack did not come up: {e:#}");
            let _ = (down.1)();
            return std::process::ExitCode::FAILURE;
        }
    }
    let trials = std::iter::once(up)
        .chain(tests)
        .chain(std::iter::once(down))
        .map(trial)
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if middle_selected && !selects(down.0) {
        let _ = (down.1)();
    }
    conclusion.exit_code()
}

/// Fails when a Docker object of one of `kinds` (`container`, `network`, `volume`, `service`,
/// `secret`) carries `label` (`key=value`).
pub fn nothing_labelled_is_left(label: &str, kinds: &[&str]) -> Result<()> {
    let filter = format!("label={label}");
    for kind in kinds {
        let mut command = std::process::Command::new("docker");
        match *kind {
            "container" => command.args(["ps", "--all"]),
            other => command.args([other, "ls"]),
        };
        let left = xtask::tools::output(command.args(["--quiet", "--filter", &filter]))?;
        ensure!(
            left.trim().is_empty(),
            "a {kind} labelled {label} is left: {left}"
        );
    }
    Ok(())
}

/// The user journey, on a deployment that must serve the real ResMem model (Compose, Swarm).
pub fn user_journey_with_resmem(ports: &Ports) -> Result<()> {
    let predicted = user_journey(ports)?;
    ensure!(
        predicted["model"]["name"] == "resmem",
        "the image serves another model than ResMem: {predicted}"
    );
    Ok(())
}
