//! The binary's subcommands: `create-admin`, `gen-key`, `healthcheck`, and `serve` with a
//! graceful stop on SIGTERM.

use std::{
    path::Path,
    process::{ExitStatus, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use reqwest::StatusCode;
use tokio::{io::AsyncWriteExt, process::Command};

use crate::helpers::{
    spawn_app, spawn_instance, test_settings, unique_name, Backend, TestDatabase, Tokens,
};

/// The built binary with a clean environment for the variables it reads.
fn users_service(database: &TestDatabase) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_users_service"));
    for name in [
        "ADMIN_USERNAME",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        "LISTEN_ADDR",
        "INSTANCE_NAME",
        "MAX_IN_FLIGHT",
    ] {
        command.env_remove(name);
    }
    command
        .env("DATABASE_URL", &database.url)
        .env("JWT_SIGNING_KEY_FILE", database.key_file())
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// `create-admin` for `username`, whose email is `username@example.com`.
fn create_admin(database: &TestDatabase, username: &str) -> Command {
    let mut command = users_service(database);
    command.args([
        "create-admin",
        "--username",
        username,
        "--email",
        &format!("{username}@example.com"),
    ]);
    command
}

/// `gen-key --out out`, run to its end.
async fn gen_key(database: &TestDatabase, out: &Path) -> Output {
    let mut command = users_service(database);
    command.args(["gen-key", "--out"]).arg(out);
    command.output().await.expect("gen-key")
}

/// `healthcheck` against `listen_addr`.
async fn healthcheck(database: &TestDatabase, listen_addr: &str) -> ExitStatus {
    let mut command = users_service(database);
    command.arg("healthcheck").env("LISTEN_ADDR", listen_addr);
    command.status().await.expect("run")
}

/// The signing key stored at `path`.
fn signing_key_at(path: &Path) -> users_service::keys::SigningKey {
    let pem = std::fs::read_to_string(path).expect("key");
    users_service::keys::SigningKey::from_pem(&pem).expect("pem")
}

/// Panics with the command's standard error unless it succeeded.
fn assert_succeeded(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

/// Panics unless the command failed saying `text` on its standard error.
fn assert_failed_saying(output: &Output, text: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(text), "{stderr}");
}

async fn create_admin_makes_an_admin_who_can_log_in(backend: Backend) {
    let database = Arc::new(TestDatabase::new(backend).await);
    let username = unique_name("boss");
    let output = create_admin(&database, &username)
        .env("ADMIN_PASSWORD", "a long admin password")
        .output()
        .await
        .expect("run create-admin");
    assert_succeeded(&output);

    let app = spawn_instance(database.clone(), test_settings(&database, "users-test")).await;
    let tokens = Tokens::from_response(app.login(&username, "a long admin password").await).await;
    assert_eq!(
        app.admin_stats(&tokens.access).await.status(),
        StatusCode::OK
    );
}

async fn create_admin_reads_the_password_from_standard_input(backend: Backend) {
    let database = Arc::new(TestDatabase::new(backend).await);
    let username = unique_name("boss");
    let mut child = create_admin(&database, &username)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create-admin");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"password from stdin\n")
        .await
        .expect("write password");
    drop(stdin);
    let output = child.wait_with_output().await.expect("create-admin");
    assert_succeeded(&output);
    let app = spawn_instance(database.clone(), test_settings(&database, "users-test")).await;
    assert_eq!(
        app.login(&username, "password from stdin").await.status(),
        StatusCode::OK
    );
}

async fn create_admin_refuses_a_short_password_and_a_taken_name(backend: Backend) {
    let database = Arc::new(TestDatabase::new(backend).await);
    let run = |password: &str| {
        let mut command = create_admin(&database, "boss");
        command.env("ADMIN_PASSWORD", password);
        async move { command.output().await.expect("run create-admin") }
    };
    assert_failed_saying(&run("short").await, "password");
    assert_succeeded(&run("long enough password").await);
    assert_failed_saying(&run("long enough password").await, "already");
}

#[tokio::test]
async fn gen_key_writes_a_key_and_its_public_half_and_never_overwrites() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let out = database.dir.path().join("fresh/signing.pem");
    assert_succeeded(&gen_key(&database, &out).await);
    let key = signing_key_at(&out);
    let public = std::fs::read_to_string(users_service::keys::public_key_path(&out)).expect(".pub");
    assert_eq!(
        common::auth::ed25519_public_key_from_pem(&public).expect("spki"),
        key.public_key
    );

    let again = gen_key(&database, &out).await;
    assert!(
        !again.status.success(),
        "an existing key must not be replaced"
    );
    let unchanged = signing_key_at(&out);
    assert_eq!(unchanged.public_key, key.public_key);
}

#[tokio::test]
async fn healthcheck_exits_zero_only_when_the_service_is_ready() {
    let app = spawn_app(Backend::Sqlite).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    assert!(healthcheck(&app.database, &addr).await.success());
    let closed = testkit::free_addr();
    assert!(!healthcheck(&app.database, &closed.to_string())
        .await
        .success());
}

#[tokio::test]
async fn serve_runs_until_sigterm_and_then_exits_cleanly() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let addr = testkit::free_addr();
    let mut child = users_service(&database)
        .env("LISTEN_ADDR", addr.to_string())
        .env("INSTANCE_NAME", "users-9")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let response = testkit::poll_until_ready(
        &client,
        &format!("http://{addr}/readyz"),
        Duration::from_secs(30),
        || {
            let exited = child.try_wait().expect("child");
            exited.map(|status| format!("serve exited early with {status}"))
        },
    )
    .await
    .unwrap_or_else(|not_ready| panic!("{not_ready}"));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-served-by"], "users-9");
    assert!(
        database.key_file().is_file(),
        "the signing key was generated at start"
    );

    let pid = child.id().expect("pid").to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill")
        .success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

testkit::on_both_databases!(
    create_admin_makes_an_admin_who_can_log_in,
    create_admin_reads_the_password_from_standard_input,
    create_admin_refuses_a_short_password_and_a_taken_name,
);
