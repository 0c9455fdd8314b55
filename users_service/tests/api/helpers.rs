//! A real users_service on a free port, over SQLite (a temp dir) or PostgreSQL (a fresh
//! database in the server `TEST_POSTGRES_URL` points at), and one method per endpoint.

use std::{path::PathBuf, sync::Arc, time::Duration};

use common::{
    auth::{Claims, Role},
    config::{LogFormat, ServerSettings},
    service::Service,
};
use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::sync::oneshot;
use users_service::{
    config::{Argon2Settings, Settings},
    keys::SigningKey,
    Application,
};
use uuid::Uuid;

pub use testkit::Backend;

/// A database for one test (or for several replicas of one test).
pub struct TestDatabase {
    pub url: String,
    pub dir: Arc<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let url = testkit::database_url(backend, &dir.path().join("db/users.db")).await;
        Self { url, dir }
    }

    /// The signing key file every replica of this test shares.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys/jwt-ed25519.pem")
    }
}

/// Settings for a test instance: the documented defaults, with this test's database and key.
pub fn test_settings(db: &TestDatabase, instance: &str) -> Settings {
    Settings {
        server: ServerSettings {
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            instance_name: instance.to_owned(),
            log_format: LogFormat::Pretty,
            max_in_flight: 256,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            body_rate: common::config::BodyRate::default(),
        },
        database_url: db.url.clone().into(),
        signing_key_file: db.key_file(),
        generate_key: true,
        issuer: common::auth::DEFAULT_ISSUER.to_owned(),
        audience: common::auth::DEFAULT_AUDIENCE.to_owned(),
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(2_592_000),
        argon2: Argon2Settings {
            max_concurrent: 2,
            ..Argon2Settings::default()
        },
        login_rate_per_ip: 1000.try_into().expect("non-zero"),
        login_rate_per_user: 1000.try_into().expect("non-zero"),
        register_rate_per_ip: 1000.try_into().expect("non-zero"),
        trusted_proxies: users_service::config::parse_cidrs(
            "TRUSTED_PROXY_CIDRS",
            "127.0.0.0/8,::1/128",
        )
        .expect("cidrs"),
        bootstrap_admin: None,
    }
}

/// A running instance.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: AnyPool,
    pub argon2_permits: Arc<tokio::sync::Semaphore>,
    pub key_file: PathBuf,
    pub database: Arc<TestDatabase>,
    _stop: oneshot::Sender<()>,
}

/// A registered user and their password.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password: String,
}

/// A token pair from `/login` or `/token/refresh`.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub async fn from_response(response: Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK, "expected a token pair");
        let body: Value = response.json().await.expect("json");
        Self {
            access: body["token"].as_str().expect("token").to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Starts an instance with default test settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts an instance after `configure` adjusted its settings.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let database = Arc::new(TestDatabase::new(backend).await);
    let mut settings = test_settings(&database, "users-test");
    configure(&mut settings);
    spawn_instance(database, settings).await
}

/// Starts one instance on `database` (replicas of one test share it).
pub async fn spawn_instance(database: Arc<TestDatabase>, settings: Settings) -> TestApp {
    let key_file = settings.signing_key_file.clone();
    let app = Application::build(settings)
        .await
        .expect("the application builds");
    let address = format!("http://{}", app.local_addr().expect("local addr"));
    let (pool, argon2_permits) = (app.db(), app.argon2_permits());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let test_app = TestApp {
        address,
        client,
        pool,
        argon2_permits,
        key_file,
        database,
        _stop: stop,
    };
    test_app.wait_until_ready().await;
    test_app
}

/// A fresh unique username.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Polls `/readyz` until it answers 200 (bounded).
    pub async fn wait_until_ready(&self) {
        testkit::wait_until_ready(&self.url("/readyz")).await;
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Posts raw bytes as `application/json` (for malformed or oversized bodies).
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json(
            "/register",
            &json!({"username": username, "email": email, "password": password}),
        )
        .await
    }

    /// Registers a new unique user and returns it.
    pub async fn register_user(&self) -> TestUser {
        let username = unique_name("user");
        let email = format!("{username}@example.com");
        let password = format!("pw-{}", Uuid::new_v4());
        let response = self.register(&username, &email, &password).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registration failed"
        );
        let body: Value = response.json().await.expect("json");
        let id = body["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .expect("id");
        TestUser {
            id,
            username,
            email,
            password,
        }
    }

    /// Registers a user and makes them an admin directly in the database.
    pub async fn register_admin(&self) -> TestUser {
        let user = self.register_user().await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(user.id.to_string())
            .execute(&self.pool)
            .await
            .expect("promote");
        user
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn login_user(&self, user: &TestUser) -> Tokens {
        Tokens::from_response(self.login(&user.username, &user.password).await).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/token/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        self.post_json("/logout", &json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get_with_token("/me", token).await
    }

    pub async fn verify(&self, token: &str) -> Response {
        self.get_with_token("/auth/verify", token).await
    }

    pub async fn admin_users(&self, token: &str, query: &str) -> Response {
        self.get_with_token(&format!("/admin/users{query}"), token)
            .await
    }

    pub async fn patch_user(&self, token: &str, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/admin/users/{id}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_stats(&self, token: &str) -> Response {
        self.get_with_token("/admin/stats", token).await
    }

    /// The signing key, read from the key file as the service does.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_pem(&std::fs::read_to_string(&self.key_file).expect("key file"))
            .expect("key")
    }

    /// Signs `claims` with the service's own key (for expired or otherwise crafted tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        let pem = std::fs::read_to_string(&self.key_file).expect("key file");
        testkit::TestKeys::from_private_pem(&pem)
            .expect("key")
            .sign(claims)
    }

    /// A metric's value from `/metrics` (the sum over series matching `selector`).
    pub async fn metric(&self, name: &str, label: Option<&str>) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| label.is_none_or(|lbl| l.contains(lbl)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Claims like the service issues, for `user`, valid for `ttl_secs` from `iat`.
pub fn claims_for(user: &TestUser, role: Role, iat: i64, ttl_secs: i64) -> Claims {
    Claims {
        sub: user.id,
        name: user.username.clone(),
        role,
        iat,
        exp: iat + ttl_secs,
        iss: common::auth::DEFAULT_ISSUER.to_owned(),
        aud: common::auth::DEFAULT_AUDIENCE.to_owned(),
        jti: Uuid::new_v4(),
        sid: None,
    }
}

pub use testkit::keys::now_secs;

/// Asserts an RFC 9457 problem with `status` and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(
        response.headers().contains_key("x-request-id"),
        "problem without X-Request-Id"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    body
}

/// The `detail` of a problem response with `status`.
pub async fn problem_detail(response: Response, status: StatusCode) -> String {
    assert_problem(response, status).await["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
