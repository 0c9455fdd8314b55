//! End-to-end tests through the real gateway: Traefik, nginx and the real services, started by the
//! native launcher on free ports. One shared stack serves the tests, which run one at a time in
//! the order below (the ones that stop or overload processes come last and restore what they
//! change). The service binaries are built fresh and the model is the converted ResMem one (see
//! the crate's library); tools come from `TRAEFIK_BIN`/`NGINX_BIN`.

#[allow(dead_code)]
mod gateway_support;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::ExitCode,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, ensure, Result};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use gateway_support::*;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use xtask::stack::Stack;

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

fn anonymous_requests_are_spread_evenly_over_the_three_replicas(stack: &mut Stack) -> Result<()> {
    anonymous_requests_are_spread_evenly(stack.ports())
}

fn requests_with_a_valid_token_go_only_to_the_authenticated_group(stack: &mut Stack) -> Result<()> {
    authenticated_requests_stay_in_the_group(stack.ports(), &gateway_support::AUTH_GROUP)
}

/// `token` with its expiry moved into the past, signed again with the stack's signing key.
fn expired_copy(stack: &Stack, token: &str) -> Result<String> {
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(parts.len() == 3, "not a JWT: {token}");
    let decode = |part: &str| -> Result<Value> {
        Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
    };
    let header = decode(parts[0])?;
    let mut claims = decode(parts[1])?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 1800);
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    jwt_header.kid = header["kid"].as_str().map(str::to_owned);
    let pem = std::fs::read(stack.data_dir().join("keys/jwt-ed25519.pem"))?;
    Ok(jsonwebtoken::encode(
        &jwt_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(&pem)?,
    )?)
}

fn an_invalid_or_expired_token_is_answered_401_by_the_authenticated_group(
    stack: &mut Stack,
) -> Result<()> {
    let ports = stack.ports().clone();
    let client = client(&ports, None)?;
    let (_, token) = new_user(&client, &ports, "expired")?;
    let expired = expired_copy(stack, &token)?;
    for (what, bad) in [("invalid", "not.a.token"), ("expired", expired.as_str())] {
        for _ in 0..4 {
            let response = client
                .get(url(&ports, "users.localhost", "/me"))
                .bearer_auth(bad)
                .send()?;
            ensure!(
                response.status() == 401,
                "an {what} token got {}",
                response.status()
            );
            let by = served_by(&response);
            ensure!(
                by == "users-2" || by == "users-3",
                "an {what} token was answered by {by:?}, outside the authenticated group"
            );
            ensure!(
                response.headers().contains_key("www-authenticate"),
                "the 401 has no WWW-Authenticate"
            );
            let problem: Value = response.json()?;
            ensure!(
                problem["status"] == 401,
                "not a problem document: {problem}"
            );
        }
    }
    // The same token, still valid, passes: the 401s above were about the token alone.
    let me = client
        .get(url(&ports, "users.localhost", "/me"))
        .bearer_auth(&token)
        .send()?;
    ensure!(me.status() == 200, "a valid token got {}", me.status());
    Ok(())
}

fn a_stale_token_sent_along_never_blocks_a_public_endpoint(stack: &mut Stack) -> Result<()> {
    let ports = stack.ports().clone();
    let client = client(&ports, None)?;
    let username = unique("stale");
    let password = "correct horse battery";
    let (_, token) = new_user(&client, &ports, "stalekey")?;
    let stale = expired_copy(stack, &token)?;
    let post = |path: &str, body: Value| {
        client
            .post(url(&ports, "users.localhost", path))
            .bearer_auth(&stale)
            .json(&body)
            .send()
    };
    let registered = post(
        "/register",
        json!({"username": username, "email": format!("{username}@example.com"), "password": password}),
    )?;
    ensure!(
        registered.status() == 201,
        "register answered {}",
        registered.status()
    );
    let login = post(
        "/login",
        json!({"username": username, "password": password}),
    )?;
    ensure!(login.status() == 200, "login answered {}", login.status());
    let login: Value = login.json()?;
    let refreshed = post(
        "/token/refresh",
        json!({"refresh_token": login["refresh_token"]}),
    )?;
    ensure!(
        refreshed.status() == 200,
        "refresh answered {}",
        refreshed.status()
    );
    let refreshed: Value = refreshed.json()?;
    let keys = client
        .get(url(&ports, "users.localhost", "/.well-known/jwks.json"))
        .bearer_auth(&stale)
        .send()?;
    ensure!(keys.status() == 200, "jwks answered {}", keys.status());
    let logout = post(
        "/logout",
        json!({"refresh_token": refreshed["refresh_token"]}),
    )?;
    ensure!(
        logout.status() == 204,
        "logout answered {}",
        logout.status()
    );
    Ok(())
}

fn identity_headers_sent_by_a_client_never_reach_a_service() -> Result<()> {
    let echo = EchoBackend::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-echo-")
        .tempdir()?;
    let mut opts = options(dir.path())?;
    let backend = format!("http://127.0.0.1:{}", echo.port);
    let traefik_env = BTreeMap::from([
        ("USERS_1_URL".to_owned(), backend.clone()),
        ("USERS_2_URL".to_owned(), backend.clone()),
        ("USERS_3_URL".to_owned(), backend.clone()),
        ("USERS_BACKUP_URL".to_owned(), backend.clone()),
        ("AUTH_GROUP_URLS".to_owned(), backend.clone()),
        ("IMAGES_URL".to_owned(), backend),
    ]);
    opts.env_overrides.insert("traefik".to_owned(), traefik_env);
    let stack = Stack::start_only(opts, &["errors", "traefik"])?;
    let client = client(stack.ports(), None)?;
    let spoof = |request: reqwest::blocking::RequestBuilder| {
        request
            .header("X-User-Id", "spoofed-id")
            .header("X-User-Name", "spoofed-name")
            .header("X-User-Role", "admin")
            .header("X_User_Id", "spoofed-alias")
    };
    // Anonymous and bearer requests alike (a bearer one goes to the authenticated group).
    for (host, path, bearer) in [
        ("users.localhost", "/me", None),
        ("images.localhost", "/images", None),
        ("users.localhost", "/me", Some("any-token")),
        ("images.localhost", "/images", Some("any-token")),
    ] {
        let mut request = spoof(client.get(url(stack.ports(), host, path)));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let seen: Value = request.send()?.json()?;
        ensure!(
            seen["x-user-id"].is_null()
                && seen["x-user-name"].is_null()
                && seen["x-user-role"].is_null(),
            "a request to {host} (bearer: {bearer:?}) carried identity headers: {seen}"
        );
        ensure!(
            seen["aliases"] == json!([]),
            "an alias of an identity header passed: {seen}"
        );
    }
    Ok(())
}

fn admin_token(stack: &Stack) -> Result<String> {
    login(
        &client(stack.ports(), None)?,
        stack.ports(),
        ADMIN_USERNAME,
        ADMIN_PASSWORD,
    )
}

fn admin_pages_are_served_to_an_admin_on_loopback(stack: &mut Stack) -> Result<()> {
    let token = admin_token(stack)?;
    let response = client(stack.ports(), None)?
        .get(url(stack.ports(), "users.localhost", "/admin/stats"))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        response.status() == 200,
        "admin from 127.0.0.1 got {}",
        response.status()
    );
    Ok(())
}

fn admin_pages_are_refused_from_another_address_even_with_a_spoofed_forwarded_for(
    stack: &mut Stack,
) -> Result<()> {
    let token = admin_token(stack)?;
    let elsewhere: IpAddr = [127, 0, 0, 2].into();
    let client = client(stack.ports(), Some(elsewhere))?;
    let plain = client
        .get(url(stack.ports(), "users.localhost", "/admin/stats"))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        plain.status() == 403,
        "admin from 127.0.0.2 got {}",
        plain.status()
    );
    ensure!(
        served_by(&plain).is_empty(),
        "the 403 came from {} instead of the gateway",
        served_by(&plain)
    );
    let spoofed = client
        .get(url(stack.ports(), "users.localhost", "/admin/users"))
        .bearer_auth(&token)
        .header("X-Forwarded-For", "127.0.0.1")
        .header("X-Real-Ip", "127.0.0.1")
        .send()?;
    ensure!(
        spoofed.status() == 403,
        "a spoofed X-Forwarded-For got {}",
        spoofed.status()
    );
    Ok(())
}

fn admin_pages_refuse_a_user_token_in_the_service(stack: &mut Stack) -> Result<()> {
    let client = client(stack.ports(), None)?;
    let (_, token) = new_user(&client, stack.ports(), "notadmin")?;
    let response = client
        .get(url(stack.ports(), "users.localhost", "/admin/users"))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        response.status() == 403,
        "a user token on /admin got {}",
        response.status()
    );
    ensure!(
        !served_by(&response).is_empty(),
        "the 403 should come from the users service"
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    Ok(())
}

fn the_full_user_journey_works_through_the_gateway(stack: &mut Stack) -> Result<()> {
    user_journey(stack.ports()).map(drop)
}

fn unknown_hosts_get_the_custom_404_page_and_error_localhost_shows_the_page(
    stack: &mut Stack,
) -> Result<()> {
    let client = client(stack.ports(), None)?;
    let unknown = client
        .get(url(stack.ports(), "unknown.localhost", "/anything"))
        .send()?;
    ensure!(
        unknown.status() == 404,
        "unknown host got {}",
        unknown.status()
    );
    let page = unknown.text()?;
    ensure!(
        page.contains("Page not found") && page.contains("Request id"),
        "not the custom page: {page}"
    );
    let hidden = client
        .get(url(stack.ports(), "users.localhost", "/metrics"))
        .send()?;
    ensure!(
        hidden.status() == 404,
        "/metrics on the public entrypoint got {}",
        hidden.status()
    );
    let site = client
        .get(url(stack.ports(), "error.localhost", "/"))
        .send()?;
    ensure!(
        site.status() == 200,
        "error.localhost got {}",
        site.status()
    );
    ensure!(
        site.text()?.contains("error pages"),
        "error.localhost does not show the error pages"
    );
    let sample = client
        .get(url(stack.ports(), "error.localhost", "/errors/503"))
        .send()?
        .text()?;
    ensure!(
        sample.contains("Service unavailable"),
        "error.localhost/errors/503: {sample}"
    );
    Ok(())
}

fn a_stopped_images_service_gets_the_custom_503_page_in_html_or_json(
    stack: &mut Stack,
) -> Result<()> {
    stack.kill("images", SIGTERM)?;
    let result = stopped_images_get_the_custom_503_page(stack.ports());
    stack.restart("images")?;
    result
}

fn saturated_replicas_fail_over_to_the_backup_and_no_request_fails(
    stack: &mut Stack,
) -> Result<()> {
    let ports = stack.ports().clone();
    let client = client(&ports, None)?;
    let (storm_user, _) = new_user(&client, &ports, "storm")?;
    let (threads, per_thread) = (12, 12);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let client = client.clone();
            let ports = ports.clone();
            let user = storm_user.clone();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                for _ in 0..per_thread {
                    let response = client
                        .post(url(&ports, "users.localhost", "/login"))
                        .json(&json!({ "username": user, "password": "correct horse battery" }))
                        .send();
                    results.push(match response {
                        Ok(r) => (r.status().as_u16(), served_by(&r)),
                        Err(e) => (0, e.to_string()),
                    });
                }
                results
            })
        })
        .collect();
    // One registration in the middle of the storm must be executed exactly once.
    let newcomer = unique("during-storm");
    let registered = register(&client, &ports, &newcomer, "correct horse battery")?;
    let registered_status = registered.status();
    let registered_by = served_by(&registered);
    let mut results = Vec::new();
    for handle in handles {
        results.extend(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a storm thread panicked"))?,
        );
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    let backup = results
        .iter()
        .filter(|(_, by)| by == "users-backup")
        .count();
    println!(
        "storm: {} logins, {} failed, {} ({:.0}%) answered by users-backup; register during the storm: {registered_status} by {registered_by}",
        results.len(),
        failed.len(),
        backup,
        100.0 * backup as f64 / results.len() as f64
    );
    ensure!(
        failed.is_empty(),
        "{} storm request(s) failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    ensure!(backup > 0, "no request was failed over to users-backup");
    ensure!(
        registered_status == 201,
        "register during the storm answered {registered_status}"
    );

    let admin = admin_token(stack)?;
    let page: Value = client
        .get(url(&ports, "users.localhost", "/admin/users?limit=200"))
        .bearer_auth(&admin)
        .send()?
        .json()?;
    let copies = page["users"].as_array().map_or(0, |u| {
        u.iter()
            .filter(|u| u["username"] == newcomer.as_str())
            .count()
    });
    ensure!(
        copies == 1,
        "{copies} accounts named {newcomer} exist (first page of /admin/users)"
    );

    eventually(
        Duration::from_secs(20),
        "anonymous traffic returns to the replicas",
        || {
            for _ in 0..6 {
                let response = client
                    .get(url(&ports, "users.localhost", "/.well-known/jwks.json"))
                    .send()?;
                if served_by(&response) == "users-backup" {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
}

fn killing_a_replica_under_steady_load_loses_no_request(stack: &mut Stack) -> Result<()> {
    let ports = stack.ports().clone();
    let client = client(&ports, None)?;
    let sent = Arc::new(AtomicUsize::new(0));
    let (threads, per_thread) = (3, 60);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (client, ports, sent) = (client.clone(), ports.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for _ in 0..per_thread {
                    match client
                        .get(url(&ports, "users.localhost", "/.well-known/jwks.json"))
                        .send()
                    {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => failures.push(format!("status {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    // A steady ~20 requests/s per thread rather than a flood.
                    std::thread::sleep(Duration::from_millis(50));
                }
                failures
            })
        })
        .collect();
    eventually(Duration::from_secs(30), "the load is under way", || {
        Ok(sent.load(Ordering::Relaxed) >= 40)
    })?;
    stack.kill("users-1", SIGKILL)?;
    let mut failures = Vec::new();
    for handle in handles {
        failures.extend(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))?,
        );
    }
    let total = threads * per_thread;
    println!(
        "replica killed under load: {} of {total} requests failed",
        failures.len()
    );
    stack.restart("users-1")?;
    if !failures.is_empty() {
        bail!(
            "{} of {total} requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
    Ok(())
}

type StackTest = fn(&mut Stack) -> Result<()>;

fn on_stack(name: &'static str, test: StackTest) -> Trial {
    Trial::test(name, move || {
        with_stack(test).map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // The tests share one stack and some of them stop or overload its processes.
    args.test_threads = Some(1);
    let trials = vec![
        on_stack(
            "anonymous_requests_are_spread_evenly_over_the_three_replicas",
            anonymous_requests_are_spread_evenly_over_the_three_replicas,
        ),
        on_stack(
            "requests_with_a_valid_token_go_only_to_the_authenticated_group",
            requests_with_a_valid_token_go_only_to_the_authenticated_group,
        ),
        on_stack(
            "an_invalid_or_expired_token_is_answered_401_by_the_authenticated_group",
            an_invalid_or_expired_token_is_answered_401_by_the_authenticated_group,
        ),
        on_stack(
            "a_stale_token_sent_along_never_blocks_a_public_endpoint",
            a_stale_token_sent_along_never_blocks_a_public_endpoint,
        ),
        Trial::test(
            "identity_headers_sent_by_a_client_never_reach_a_service",
            || {
                identity_headers_sent_by_a_client_never_reach_a_service()
                    .map_err(|e| Failed::from(format!("{e:#}")))
            },
        ),
        on_stack(
            "admin_pages_are_served_to_an_admin_on_loopback",
            admin_pages_are_served_to_an_admin_on_loopback,
        ),
        on_stack(
            "admin_pages_are_refused_from_another_address_even_with_a_spoofed_forwarded_for",
            admin_pages_are_refused_from_another_address_even_with_a_spoofed_forwarded_for,
        ),
        on_stack(
            "admin_pages_refuse_a_user_token_in_the_service",
            admin_pages_refuse_a_user_token_in_the_service,
        ),
        on_stack(
            "the_full_user_journey_works_through_the_gateway",
            the_full_user_journey_works_through_the_gateway,
        ),
        on_stack(
            "unknown_hosts_get_the_custom_404_page_and_error_localhost_shows_the_page",
            unknown_hosts_get_the_custom_404_page_and_error_localhost_shows_the_page,
        ),
        on_stack(
            "a_stopped_images_service_gets_the_custom_503_page_in_html_or_json",
            a_stopped_images_service_gets_the_custom_503_page_in_html_or_json,
        ),
        on_stack(
            "saturated_replicas_fail_over_to_the_backup_and_no_request_fails",
            saturated_replicas_fail_over_to_the_backup_and_no_request_fails,
        ),
        on_stack(
            "killing_a_replica_under_steady_load_loses_no_request",
            killing_a_replica_under_steady_load_loses_no_request,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    shutdown();
    conclusion.exit_code()
}
