//! End to end: the monitoring configuration against a real Prometheus that scraped a real run.
//!
//! The native stack starts with Prometheus on free ports (Prometheus reads
//! `monitoring/prometheus.yml` and `monitoring/rules/` through the launcher). Real traffic goes
//! through the gateway: registrations, logins (ok and failed), token refreshes, admin calls,
//! uploads (accepted, deduplicated, rejected), predictions, 4xx answers, 5xx answers while
//! images_service is stopped, and an overload of the users replicas that fails over to the
//! backup. Once Prometheus has scraped every target twice after the traffic (polled, never slept
//! for), every expression of every Grafana panel must return data, and every alert rule must be
//! loaded, evaluate without error and be accepted by the query API.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};
use xtask::{
    checks::monitoring::{
        alert_rules, dashboard_queries, grafana_to_promql, monitoring_dir, DashboardQuery,
    },
    stack::{Ports, Stack, StackOptions},
};

/// Every scrape target of `monitoring/targets/*.json`, natively.
const TARGETS: usize = 8;
/// Replicas that shed beyond this many requests, so a burst fails over to the backup.
const REPLICA_MAX_IN_FLIGHT: &str = "1";
/// Windows that replace Grafana's `$__rate_interval` and `$__range`: the whole test run fits.
const RATE_WINDOW: &str = "2m";
const RANGE: &str = "30m";
/// How long the dashboard queries may take to all have data once every target was scraped.
const QUERY_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// HTTP through the gateway.

/// An HTTP answer of any status.
struct Answer {
    status: u16,
    served_by: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn field(&self, name: &str) -> String {
        match &self.json()[name] {
            Value::String(s) => s.clone(),
            Value::Null => panic!("no {name} in {}", self.body),
            other => other.to_string(),
        }
    }
}

/// Talks to the gateway as `<host>.localhost`, whatever the resolver of this machine knows.
struct Gateway {
    agent: ureq::Agent,
    port: u16,
}

impl Gateway {
    fn new(port: u16) -> Self {
        // Every `*.localhost` name is loopback (as curl and browsers treat it).
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .resolver(|address: &str| -> std::io::Result<Vec<SocketAddr>> {
                let port = address
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(80);
                if address
                    .split(':')
                    .next()
                    .is_some_and(|host| host.ends_with("localhost"))
                {
                    Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
                } else {
                    address.to_socket_addrs().map(Iterator::collect)
                }
            })
            .build();
        Self { agent, port }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}.localhost:{}{path}", self.port)
    }

    fn send(&self, request: ureq::Request, body: Option<(&str, Vec<u8>)>) -> Answer {
        let result = match body {
            Some((content_type, bytes)) => {
                request.set("Content-Type", content_type).send_bytes(&bytes)
            }
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("request failed without an HTTP answer: {e}"),
        };
        let status = response.status();
        let served_by = response
            .header("x-served-by")
            .unwrap_or_default()
            .to_owned();
        let mut body = String::new();
        response
            .into_reader()
            .take(4 << 20)
            .read_to_string(&mut body)
            .ok();
        Answer {
            status,
            served_by,
            body,
        }
    }

    fn get(&self, host: &str, path: &str, token: Option<&str>) -> Answer {
        let mut request = self
            .agent
            .get(&self.url(host, path))
            .set("Accept", "application/json");
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        self.send(request, None)
    }

    fn delete(&self, host: &str, path: &str, token: &str) -> Answer {
        let request = self
            .agent
            .delete(&self.url(host, path))
            .set("Authorization", &format!("Bearer {token}"));
        self.send(request, None)
    }

    fn post_json(&self, host: &str, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut request = self
            .agent
            .post(&self.url(host, path))
            .set("Accept", "application/json");
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        self.send(
            request,
            Some(("application/json", body.to_string().into_bytes())),
        )
    }

    fn post_bytes(
        &self,
        host: &str,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Answer {
        let request = self
            .agent
            .post(&self.url(host, path))
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {token}"));
        self.send(request, Some((content_type, bytes)))
    }

    /// `POST images.localhost/upload` with a multipart field `file`.
    fn upload(&self, token: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> Answer {
        let boundary = "forgettable-monitoring-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.post_bytes(
            "images",
            "/upload",
            token,
            &format!("multipart/form-data; boundary={boundary}"),
            body,
        )
    }
}

fn expect_client_error(answer: &Answer, what: &str) {
    assert!(
        (400..500).contains(&answer.status),
        "{what}: expected a 4xx, got {} {}",
        answer.status,
        answer.body
    );
}

fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(
        answer.status, status,
        "{what}: expected {status}, got {} {}",
        answer.status, answer.body
    );
}

// ---------------------------------------------------------------------------------------------
// A small PNG encoder (stored deflate blocks), so uploads are real images without a codec crate.

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(
        &u32::try_from(data.len())
            .expect("small chunk")
            .to_be_bytes(),
    );
    let mut typed = kind.to_vec();
    typed.extend_from_slice(data);
    png.extend_from_slice(&typed);
    png.extend_from_slice(&crc32(&typed).to_be_bytes());
}

/// A `size`×`size` RGB PNG with a gradient seeded by `seed` (different seeds, different images).
fn png(size: u32, seed: u8) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..size {
        raw.push(0); // filter: none
        for x in 0..size {
            let (x, y) = (
                u8::try_from(x % 256).unwrap_or(0),
                u8::try_from(y % 256).unwrap_or(0),
            );
            raw.extend_from_slice(&[
                x.wrapping_mul(4).wrapping_add(seed),
                y.wrapping_mul(4),
                seed.wrapping_mul(37) ^ x,
            ]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (index, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(index + 1 == blocks.len()));
        let len = u16::try_from(block.len()).expect("block fits");
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&size.to_be_bytes());
    header.extend_from_slice(&size.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

// ---------------------------------------------------------------------------------------------
// Prometheus's HTTP API.

struct Prometheus {
    agent: ureq::Agent,
    base: String,
}

impl Prometheus {
    fn new(port: u16) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        Self {
            agent,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The JSON answer of an API call, whatever its status (errors carry `error`).
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        for (name, value) in params {
            request = request.query(name, value);
        }
        let response = match request.call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("Prometheus {path} failed: {e}"),
        };
        let text = response.into_string().unwrap_or_default();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("Prometheus {path} answered non-JSON ({e}): {text}"))
    }

    /// `Ok(series)` for a successful instant query, `Err(message)` otherwise.
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let answer = self.api("/api/v1/query", &[("query", promql)]);
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    fn scalar(&self, promql: &str) -> Option<f64> {
        let series = self.query(promql).ok()?;
        series.first()?["value"][1].as_str()?.parse().ok()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// The stack.

fn start_stack(data_dir: PathBuf) -> Stack {
    let replica = BTreeMap::from([
        ("MAX_IN_FLIGHT".to_owned(), REPLICA_MAX_IN_FLIGHT.to_owned()),
        ("ARGON2_MAX_CONCURRENT".to_owned(), "1".to_owned()),
        ("ARGON2_MAX_QUEUE".to_owned(), "100000".to_owned()),
        (
            "REGISTER_RATE_PER_MINUTE_IP".to_owned(),
            "100000".to_owned(),
        ),
    ]);
    let mut env_overrides: BTreeMap<String, BTreeMap<String, String>> =
        ["users-1", "users-2", "users-3"]
            .into_iter()
            .map(|name| (name.to_owned(), replica.clone()))
            .collect();
    // The backup takes the registrations the saturated replicas shed: no limit of its own either.
    env_overrides.insert(
        "users-backup".to_owned(),
        BTreeMap::from([
            ("ARGON2_MAX_QUEUE".to_owned(), "100000".to_owned()),
            (
                "REGISTER_RATE_PER_MINUTE_IP".to_owned(),
                "100000".to_owned(),
            ),
        ]),
    );
    // One instance creates the first admin, so the replicas do not race for it.
    env_overrides.get_mut("users-1").expect("users-1").extend([
        ("ADMIN_USERNAME".to_owned(), "monitoring_admin".to_owned()),
        ("ADMIN_EMAIL".to_owned(), "admin@monitoring.test".to_owned()),
        (
            "ADMIN_PASSWORD".to_owned(),
            "admin password for the monitoring test".to_owned(),
        ),
    ]);
    // The traffic registers and logs in from one address beyond the gateway's own limits too.
    env_overrides.insert("traefik".to_owned(), system_tests::gateway_limits_lifted());
    let options = StackOptions {
        data_dir,
        bin_dir: system_tests::service_binaries().unwrap_or_else(|e| panic!("{e:#}")),
        model_dir: system_tests::resmem_model_dir().unwrap_or_else(|e| panic!("{e:#}")),
        ports: Ports::free().expect("free ports"),
        env_overrides,
        with_prometheus: true,
    };
    Stack::start(options).unwrap_or_else(|e| panic!("the native stack did not start: {e:#}"))
}

// ---------------------------------------------------------------------------------------------
// Traffic.

struct Session {
    token: String,
    refresh_token: String,
}

fn register(gateway: &Gateway, username: &str, password: &str) -> Answer {
    let email = format!("{username}@monitoring.test");
    gateway.post_json(
        "users",
        "/register",
        None,
        &json!({ "username": username, "email": email, "password": password }),
    )
}

fn login(gateway: &Gateway, username: &str, password: &str) -> Session {
    let answer = gateway.post_json(
        "users",
        "/login",
        None,
        &json!({ "username": username, "password": password }),
    );
    expect(&answer, 200, "login");
    Session {
        token: answer.field("token"),
        refresh_token: answer.field("refresh_token"),
    }
}

/// Accounts, tokens and the admin endpoints.
fn drive_users(gateway: &Gateway) -> Session {
    let password = "correct horse battery staple";
    expect(
        &register(gateway, "alice_monitoring", password),
        201,
        "register",
    );
    expect(
        &register(gateway, "alice_monitoring", password),
        409,
        "register the same username again",
    );
    expect_client_error(
        &gateway.post_json("users", "/register", None, &json!({ "username": "x" })),
        "register without fields",
    );
    let wrong = json!({ "username": "alice_monitoring", "password": "not the password" });
    for _ in 0..3 {
        expect(
            &gateway.post_json("users", "/login", None, &wrong),
            401,
            "login with a wrong password",
        );
    }
    let first = login(gateway, "alice_monitoring", password);
    let refreshed = gateway.post_json(
        "users",
        "/token/refresh",
        None,
        &json!({ "refresh_token": first.refresh_token }),
    );
    expect(&refreshed, 200, "refresh");
    let reused = gateway.post_json(
        "users",
        "/token/refresh",
        None,
        &json!({ "refresh_token": first.refresh_token }),
    );
    expect_client_error(&reused, "reuse of a rotated refresh token");
    let session = login(gateway, "alice_monitoring", password);
    expect(
        &gateway.get("users", "/me", Some(&session.token)),
        200,
        "me",
    );
    expect(
        &gateway.get("users", "/me", Some("not-a-token")),
        401,
        "me with a bad token",
    );
    expect(
        &gateway.get("users", "/.well-known/jwks.json", None),
        200,
        "jwks",
    );

    let admin = login(
        gateway,
        "monitoring_admin",
        "admin password for the monitoring test",
    );
    expect(
        &gateway.get("users", "/admin/users?limit=10", Some(&admin.token)),
        200,
        "admin users",
    );
    expect(
        &gateway.get("users", "/admin/stats", Some(&admin.token)),
        200,
        "admin stats",
    );
    expect(
        &gateway.get("users", "/admin/stats", Some(&session.token)),
        403,
        "admin stats as a user",
    );
    session
}

/// Uploads (new, duplicate, rejected), listing, download, deletion and predictions.
fn drive_images_and_inference(gateway: &Gateway, token: &str) {
    let mut ids = Vec::new();
    for seed in 0..3 {
        let answer = gateway.upload(
            token,
            &format!("gradient-{seed}.png"),
            "image/png",
            &png(48, seed * 50),
        );
        expect(&answer, 201, "upload");
        ids.push(answer.field("image_id"));
    }
    let duplicate = gateway.upload(token, "again.png", "image/png", &png(48, 0));
    assert!(
        duplicate.status < 300,
        "uploading the same image again: {} {}",
        duplicate.status,
        duplicate.body
    );
    let text = gateway.upload(token, "notes.txt", "text/plain", b"not an image at all");
    assert!(
        matches!(text.status, 415 | 422),
        "a text upload is refused: {} {}",
        text.status,
        text.body
    );
    expect(
        &gateway.get("images", "/images?limit=10", Some(token)),
        200,
        "list images",
    );
    expect(
        &gateway.get("images", &format!("/images/{}", ids[0]), Some(token)),
        200,
        "download",
    );
    expect(
        &gateway.get("images", &format!("/images/{}/meta", ids[0]), Some(token)),
        200,
        "meta",
    );
    expect(
        &gateway.get(
            "images",
            "/images/00000000-0000-0000-0000-000000000000",
            Some(token),
        ),
        404,
        "unknown image",
    );

    for id in &ids {
        let prediction = gateway.get("inference", &format!("/predict/{id}"), Some(token));
        expect(&prediction, 200, "predict an uploaded image");
    }
    // The same image again: answered from the cache if the service has one.
    expect(
        &gateway.get("inference", &format!("/predict/{}", ids[0]), Some(token)),
        200,
        "predict again",
    );
    let raw = gateway.post_bytes("inference", "/predict", token, "image/png", png(40, 200));
    expect(&raw, 200, "predict raw bytes");
    expect(
        &gateway.get("inference", "/model", Some(token)),
        200,
        "model",
    );
    expect(
        &gateway.delete("images", &format!("/images/{}", ids[2]), token),
        204,
        "delete",
    );
}

/// Client errors at the gateway and the error pages.
fn drive_errors(gateway: &Gateway, token: &str) {
    expect(&gateway.get("nowhere", "/", None), 404, "unknown host");
    expect(
        &gateway.get("users", "/no/such/route", None),
        404,
        "unknown route",
    );
    expect(
        &gateway.get("images", "/images", None),
        401,
        "images without a token",
    );
    let page = gateway.get("error", "/errors/503", None);
    assert!(
        !page.body.is_empty(),
        "error.localhost shows an error page: {} with an empty body",
        page.status
    );
    expect_client_error(
        &gateway.get("users", "/metrics", Some(token)),
        "service metrics are not public",
    );
}

/// Server errors: images_service stopped, so the gateway and inference answer 5xx; then restarted.
fn drive_server_errors(stack: &mut Stack, gateway: &Gateway, token: &str) {
    stack.kill("images", 15).expect("SIGTERM images");
    let listing = poll(
        "the gateway to answer 5xx for the stopped images service",
        Duration::from_secs(30),
        || {
            let answer = gateway.get("images", "/images", Some(token));
            (answer.status >= 500).then_some(answer)
        },
    );
    assert!(listing.status >= 500);
    let prediction = gateway.get(
        "inference",
        "/predict/00000000-0000-0000-0000-000000000000",
        Some(token),
    );
    assert!(
        prediction.status >= 500,
        "inference without images_service: {} {}",
        prediction.status,
        prediction.body
    );
    stack.restart("images").expect("restart images");
    poll("images to be served again", Duration::from_secs(30), || {
        (gateway.get("images", "/images", Some(token)).status == 200).then_some(())
    });
}

/// A burst of registrations (argon2 on purpose) over replicas that handle one request at a time:
/// they shed, and Traefik fails over to users-backup. Bounded: 12 clients × 2 requests. Returns
/// how many answers came from the backup.
fn drive_overload(gateway: &Gateway) -> usize {
    let by_backup = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..12 {
            let by_backup = &by_backup;
            scope.spawn(move || {
                for round in 0..2 {
                    let answer = register(
                        gateway,
                        &format!("burst_{client}_{round}"),
                        "burst password 1234",
                    );
                    // Whether every answer under overload is right is the gateway tests' theme;
                    // here a 5xx is still traffic the dashboards must show, a 4xx is a bug.
                    assert!(
                        answer.status == 201 || answer.status >= 500,
                        "registration under load: {} {}",
                        answer.status,
                        answer.body
                    );
                    if answer.served_by == "users-backup" {
                        by_backup.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    by_backup.into_inner()
}

/// What is wrong with the dashboard queries now: parse errors and queries without data.
fn dashboard_failures(prometheus: &Prometheus, queries: &[DashboardQuery]) -> Vec<String> {
    let mut failures = Vec::new();
    for query in queries {
        let promql =
            grafana_to_promql(&query.expr, RATE_WINDOW, RANGE).expect("known Grafana variables");
        match prometheus.query(&promql) {
            Ok(series) if series.is_empty() => {
                failures.push(format!("{}: no data for {promql}", query.location()))
            }
            Ok(_) => {}
            Err(e) => failures.push(format!("{}: {e} in {promql}", query.location())),
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_dashboard_query_and_alert_rule_works_on_prometheus_after_real_traffic() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut stack = start_stack(data.path().to_path_buf());
    let ports = stack.ports().clone();
    let gateway = Gateway::new(ports.web);
    let prometheus = Prometheus::new(ports.prometheus);

    let traffic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let session = drive_users(&gateway);
        drive_server_errors(&mut stack, &gateway, &session.token);
        drive_images_and_inference(&gateway, &session.token);
        drive_errors(&gateway, &session.token);
        drive_overload(&gateway)
    }));
    let failed_over = match traffic {
        Ok(count) => count,
        Err(panic) => {
            // The answer alone rarely says which component misbehaved: show their logs.
            for name in [
                "traefik",
                "users-1",
                "users-2",
                "users-3",
                "users-backup",
                "images",
                "inference",
            ] {
                eprintln!(
                    "---- last lines of the {name} log ----\n{}",
                    stack.log_tail(name)
                );
            }
            std::panic::resume_unwind(panic);
        }
    };
    assert!(
        failed_over > 0,
        "no request of the burst was answered by users-backup: failover did not happen"
    );
    let traffic_done = unix_now();

    // Every target up and scraped at least twice since the traffic, so every counter the traffic
    // created has two samples for rate().
    let scraped = format!(
        "count(up == 1 and timestamp(up) > {:.3})",
        traffic_done + 5.5
    );
    poll(
        "Prometheus to scrape every target twice after the traffic",
        Duration::from_secs(90),
        || (prometheus.scalar(&scraped) == Some(TARGETS as f64)).then_some(()),
    );

    let monitoring = monitoring_dir();
    let queries = dashboard_queries(&monitoring).expect("dashboard queries");
    assert!(
        queries.len() > 30,
        "only {} dashboard queries found",
        queries.len()
    );
    // A series the traffic created needs two samples before rate() sees it, and scrapes of the
    // targets are spread over the interval: poll until every query has data, within a bound.
    let deadline = Instant::now() + QUERY_DEADLINE;
    let mut failures = loop {
        let failures = dashboard_failures(&prometheus, &queries);
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        std::thread::sleep(Duration::from_secs(1));
    };

    // Rules: loaded from monitoring/rules, evaluated by Prometheus without error, and each
    // expression accepted by the query API.
    let expected: BTreeSet<String> = alert_rules(&monitoring)
        .expect("alert rules")
        .into_iter()
        .map(|r| r.name)
        .collect();
    let rules = poll(
        "every alert rule to be evaluated once",
        Duration::from_secs(30),
        || {
            let answer = prometheus.api("/api/v1/rules", &[("type", "alert")]);
            let rules: Vec<Value> = answer["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules
                .iter()
                .all(|rule| rule["health"] != "unknown")
                .then_some(rules)
        },
    );
    let loaded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    if loaded != expected {
        failures.push(format!(
            "Prometheus loaded alerts {loaded:?}, monitoring/rules defines {expected:?}"
        ));
    }
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            failures.push(format!(
                "alert {name}: health {} ({})",
                rule["health"], rule["lastError"]
            ));
        }
        let expr = rule["query"].as_str().unwrap_or_default();
        if let Err(e) = prometheus.query(expr) {
            failures.push(format!("alert {name}: {e} in {expr}"));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries and {} alert rules failed:\n  {}",
        failures.len(),
        queries.len(),
        rules.len(),
        failures.join("\n  ")
    );
}
