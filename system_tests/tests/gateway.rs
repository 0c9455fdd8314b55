//! End-to-end tests through the real gateway: Traefik, nginx and the real services, started by the
//! native launcher on free ports. One shared stack serves the tests, which run one at a time in
//! the order below (the ones that stop or overload processes come last and restore what they
//! change). The service binaries are built fresh and the model is the converted ResMem one (see
//! the crate's library); tools come from `TRAEFIK_BIN`/`NGINX_BIN`.

#[allow(dead_code)]
mod gateway_support;
mod hostile;

use std::{collections::BTreeMap, net::IpAddr, process::ExitCode, time::Duration};

use anyhow::{bail, ensure, Result};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use gateway_support::*;
use libtest_mimic::{Arguments, Failed, Trial};
use reqwest::blocking::Client;
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

/// The users failovers buffer at most users_service's own body limit; a larger body gets the
/// gateway's 413 as the same problem document the service sends, anonymous or with a token.
fn a_body_over_the_users_limit_gets_a_problem_413_and_one_at_the_limit_passes(
    stack: &mut Stack,
) -> Result<()> {
    let ports = stack.ports().clone();
    let client = client(&ports, None)?;
    let (_, token) = new_user(&client, &ports, "bigbody")?;
    // A JSON document of exactly `len` bytes.
    let body_of = |len: usize| {
        let frame = r#"{"username":"","password":"x"}"#.len();
        format!(
            r#"{{"username":"{}","password":"x"}}"#,
            "a".repeat(len - frame)
        )
    };
    for bearer in [None, Some(&token)] {
        let send = |body: String| {
            let mut request = client
                .post(url(&ports, "users.localhost", "/login"))
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let too_large = send(body_of(users_service::routes::MAX_BODY_BYTES + 1))?;
        let status = too_large.status();
        let content_type = content_type(&too_large);
        let problem: Value = too_large.json()?;
        ensure!(
            status == 413
                && content_type.starts_with("application/problem+json")
                && problem["type"] == "/problems/too-large",
            "a body over the limit (token: {}) got {status} {content_type} {problem}",
            bearer.is_some()
        );
        // At the limit the service reads it: a username that long is a failed login.
        let at_limit = send(body_of(users_service::routes::MAX_BODY_BYTES))?;
        ensure!(
            at_limit.status() == 401,
            "a body at the limit (token: {}) got {}",
            bearer.is_some(),
            at_limit.status()
        );
    }
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

/// A users replica whose address stops answering, as a killed Swarm task's does (a connect times
/// out instead of being refused), loses no POST: the gateway sends a request whose connect timed
/// out to another replica with its whole body. Traefik's plain retry would send the body the
/// failover had already read, an empty one, and answer 500.
fn a_replica_whose_address_times_out_loses_no_post() -> Result<()> {
    // A round in which Traefik's health check took users-1 out before any POST reached it
    // proves nothing (on a loaded machine the POSTs can be that late); it is run again. A lost
    // POST fails at once.
    const ROUNDS: u32 = 3;
    for round in 1..=ROUNDS {
        let slowest = posts_while_users_1_times_out()?;
        // The dial timeout is 2 s: a POST that took less than that never met the dark address.
        if slowest >= Duration::from_millis(1900) {
            return Ok(());
        }
        println!("round {round}: no POST met the dark address (slowest {slowest:?})");
    }
    bail!("in {ROUNDS} rounds no POST met the dark address: the test proved nothing")
}

/// 9 concurrent POSTs while users-1's address times out; each must reach a live replica with
/// its whole body. Returns how long the slowest took.
fn posts_while_users_1_times_out() -> Result<Duration> {
    let echo = EchoBackend::start()?;
    let mut hole = BlackHole::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-hole-")
        .tempdir()?;
    let hole_url = format!("http://127.0.0.1:{}", hole.port);
    let stack = gateway_alone(dir.path(), &echo, &[("USERS_1_URL", &hole_url)])?;
    let body = json!({ "refresh_token": "not-a-token" }).to_string();
    let clients: Vec<Client> = (0..9)
        .map(|_| client(stack.ports(), None))
        .collect::<Result<_>>()?;
    hole.go_dark()?;
    // At once, before a health check can notice: a third of them go to the dark address first.
    let post = |client: &Client| -> Result<(u16, Value, Duration)> {
        let started = std::time::Instant::now();
        let response = client
            .post(url(stack.ports(), "users.localhost", "/token/refresh"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        let seen = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, seen, started.elapsed()))
    };
    let answers: Vec<Result<(u16, Value, Duration)>> = std::thread::scope(|scope| {
        let posts: Vec<_> = clients
            .iter()
            .map(|client| scope.spawn(|| post(client)))
            .collect();
        posts
            .into_iter()
            .map(|p| {
                p.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a POST panicked")))
            })
            .collect()
    });
    let mut slowest = Duration::ZERO;
    for answer in answers {
        let (status, seen, took) = answer?;
        ensure!(
            status == 200 && seen["body_bytes"] == body.len(),
            "a POST while users-1's address times out got {status}: {seen}"
        );
        slowest = slowest.max(took);
    }
    Ok(slowest)
}

/// `GET users.localhost/admin/stats` with a bearer token, from `from`, with `accept`.
fn admin_stats_from(
    stack: &Stack,
    from: IpAddr,
    accept: &str,
) -> Result<reqwest::blocking::Response> {
    Ok(client(stack.ports(), Some(from))?
        .get(url(stack.ports(), "users.localhost", "/admin/stats"))
        .bearer_auth("an-admin-token")
        .header("accept", accept)
        .send()?)
}

/// Traefik rejects an allow-list with a malformed entry (or none left) and disables the admin
/// router; /admin must then be refused, not fall through to the replicas' routers.
fn a_malformed_admin_allow_list_closes_admin_to_everyone() -> Result<()> {
    let echo = EchoBackend::start()?;
    for cidrs in ["127.0.0.1/32,::1/129", " , "] {
        let dir = tempfile::Builder::new()
            .prefix("forgettable-admin-")
            .tempdir()?;
        let stack = gateway_alone(dir.path(), &echo, &[("ADMIN_ALLOWED_CIDRS", cidrs)])?;
        for from in [[127u8, 0, 0, 2], [127, 0, 0, 1]] {
            let from = IpAddr::from(from);
            let response = admin_stats_from(&stack, from, "application/json")?;
            let status = response.status();
            let body = response.text()?;
            ensure!(
                status == 403,
                "ADMIN_ALLOWED_CIDRS={cidrs:?}: /admin/stats from {from} got {status}: {body}"
            );
            let problem: Value = serde_json::from_str(&body)?;
            ensure!(
                problem["type"] == "/problems/forbidden" && problem["status"] == 403,
                "ADMIN_ALLOWED_CIDRS={cidrs:?}: not the gateway's 403 page: {body}"
            );
        }
    }
    Ok(())
}

fn a_stray_comma_in_the_admin_allow_list_is_skipped() -> Result<()> {
    let echo = EchoBackend::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-admin-")
        .tempdir()?;
    let cidrs = "127.0.0.1/32,,::1/128,";
    let stack = gateway_alone(dir.path(), &echo, &[("ADMIN_ALLOWED_CIDRS", cidrs)])?;
    let allowed = admin_stats_from(&stack, IpAddr::from([127u8, 0, 0, 1]), "application/json")?;
    ensure!(
        allowed.status() == 200,
        "/admin/stats from 127.0.0.1 got {}",
        allowed.status()
    );
    let echoed: Value = allowed.json()?;
    ensure!(
        echoed.get("aliases").is_some(),
        "the backend was not reached: {echoed}"
    );
    let refused = admin_stats_from(&stack, IpAddr::from([127u8, 0, 0, 2]), "application/json")?;
    ensure!(
        refused.status() == 403,
        "/admin/stats from 127.0.0.2 got {}",
        refused.status()
    );
    Ok(())
}

/// Empty entries in AUTH_GROUP_URLS (a stray comma) are skipped, not made into servers with no
/// address: bearer traffic still reaches the group.
fn a_stray_comma_in_the_auth_group_is_skipped() -> Result<()> {
    let echo = EchoBackend::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-group-")
        .tempdir()?;
    let backend = format!("http://127.0.0.1:{}", echo.port);
    let group = format!("{backend},, {backend},");
    let stack = gateway_alone(dir.path(), &echo, &[("AUTH_GROUP_URLS", &group)])?;
    let client = client(stack.ports(), None)?;
    let mut last = String::new();
    eventually(
        Duration::from_secs(10),
        "bearer traffic reaches the group",
        || {
            let response = client
                .get(url(stack.ports(), "users.localhost", "/me"))
                .bearer_auth("a-token")
                .send()?;
            last = format!("{} {}", response.status(), response.text()?);
            Ok(last.starts_with("200") && last.contains("aliases"))
        },
    )
    .map_err(|e| e.context(format!("the last answer: {last}")))?;
    // Every request, not only some: no server of the group is a blank one.
    for _ in 0..12 {
        let response = client
            .get(url(stack.ports(), "users.localhost", "/me"))
            .bearer_auth("a-token")
            .send()?;
        ensure!(
            response.status() == 200,
            "a bearer request got {}",
            response.status()
        );
    }
    Ok(())
}

/// The gateway counts /login and /register per client address before it picks a replica, so the
/// documented numbers hold however many replicas answer. Its 429 is the problem document with
/// `Retry-After`, a Bearer header sent along does not skip the count, and another address has a
/// quota of its own.
fn logins_and_registrations_are_limited_per_address_at_the_gateway() -> Result<()> {
    let echo = EchoBackend::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-limits-")
        .tempdir()?;
    let stack = gateway_alone(
        dir.path(),
        &echo,
        &[
            ("GATEWAY_LOGIN_RATE_PER_MINUTE_IP", "4"),
            ("GATEWAY_REGISTER_RATE_PER_MINUTE_IP", "2"),
        ],
    )?;
    let post = |from: [u8; 4], path: &str, bearer: bool| -> Result<reqwest::blocking::Response> {
        let mut request = client(stack.ports(), Some(IpAddr::from(from)))?
            .post(url(stack.ports(), "users.localhost", path))
            .header("accept", "application/json")
            .json(&json!({"username": "someone", "password": "password123"}));
        if bearer {
            request = request.bearer_auth("any-token");
        }
        Ok(request.send()?)
    };
    for (path, quota) in [("/login", 4), ("/register", 2)] {
        for n in 0..quota {
            let status = post([127, 0, 0, 1], path, n % 2 == 1)?.status();
            ensure!(status == 200, "{path} #{n} within the quota got {status}");
        }
        for bearer in [false, true] {
            let refused = post([127, 0, 0, 1], path, bearer)?;
            let status = refused.status();
            let header = |name: &str| {
                refused
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (content_type, retry_after) = (header("content-type"), header("retry-after"));
            let body = refused.text()?;
            ensure!(
                status == 429
                    && content_type.starts_with("application/problem+json")
                    && retry_after == "60",
                "{path} over the quota (bearer: {bearer}) got {status} {content_type} \
                 Retry-After {retry_after:?}: {body}"
            );
            let problem: Value = serde_json::from_str(&body)?;
            ensure!(
                problem["type"] == "/problems/rate-limited" && problem["status"] == 429,
                "{path}: not the rate-limit problem: {body}"
            );
        }
        let other = post([127, 0, 0, 2], path, false)?.status();
        ensure!(other == 200, "{path} from another address got {other}");
    }
    Ok(())
}

/// Health and readiness probes are for Traefik's health checks and the orchestrator, which call
/// the servers directly, and users_service's revocation feed is for the other services; from the
/// public entrypoint any host gets the 404 page.
fn health_readiness_metrics_and_internal_endpoints_are_not_served_on_the_public_entrypoint(
) -> Result<()> {
    let echo = EchoBackend::start()?;
    let dir = tempfile::Builder::new()
        .prefix("forgettable-probes-")
        .tempdir()?;
    let stack = gateway_alone(dir.path(), &echo, &[])?;
    let client = client(stack.ports(), None)?;
    for host in PUBLIC_HOSTS {
        for path in [
            "/readyz",
            "/healthz",
            "/metrics",
            "/readyz/",
            "/healthz?full=1",
            "/internal/revocations",
            "/internal/revocations?since=0",
        ] {
            let response = client.get(url(stack.ports(), host, path)).send()?;
            let status = response.status();
            let page = response.text()?;
            ensure!(
                status == 404 && page.contains("Page not found"),
                "{host}{path} got {status}: {page}"
            );
        }
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
        .header("Accept", "application/json")
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
    let content_type = content_type(&plain);
    let problem: Value = plain.json()?;
    ensure!(
        content_type == "application/problem+json"
            && problem["type"] == "/problems/forbidden"
            && problem["status"] == 403,
        "the gateway's 403 is not its problem document: {content_type} {problem}"
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
    let content_type = content_type(&response);
    ensure!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    Ok(())
}

/// A user's session through the gateway: its access token and refresh token.
struct Session {
    id: String,
    access: String,
    refresh: String,
}

fn new_session(stack: &Stack, prefix: &str) -> Result<(String, Session)> {
    let client = client(stack.ports(), None)?;
    let (username, token) = new_user(&client, stack.ports(), prefix)?;
    let id = client
        .get(url(stack.ports(), "users.localhost", "/me"))
        .bearer_auth(&token)
        .send()?
        .json::<Value>()?["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("/me has no id"))?;
    let pair = client
        .post(url(stack.ports(), "users.localhost", "/login"))
        .json(&json!({ "username": username, "password": "correct horse battery" }))
        .send()?
        .json::<Value>()?;
    let field = |name: &str| {
        pair[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("login answer has no {name}: {pair}"))
    };
    Ok((
        username,
        Session {
            id,
            access: field("token")?,
            refresh: field("refresh_token")?,
        },
    ))
}

/// One authenticated endpoint of each service: users `/me`, images `/images`, inference `/model`.
const PROTECTED: [(&str, &str); 3] = [
    ("users.localhost", "/me"),
    ("images.localhost", "/images"),
    ("inference.localhost", "/model"),
];

/// The status every protected endpoint answers `token`.
fn statuses(stack: &Stack, token: &str) -> Result<Vec<u16>> {
    let client = client(stack.ports(), None)?;
    PROTECTED
        .iter()
        .map(|(host, path)| {
            Ok(client
                .get(url(stack.ports(), host, path))
                .bearer_auth(token)
                .send()?
                .status()
                .as_u16())
        })
        .collect()
}

/// How long a revocation may take to reach every service.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);

/// Runs `revoke` on a session whose token works everywhere, then polls until every service
/// answers the old token 401, and prints how long that took.
fn revocation_reaches_every_service(
    stack: &Stack,
    what: &str,
    token: &str,
    revoke: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let before = statuses(stack, token)?;
    ensure!(
        before == [200; 3],
        "{what}: the token worked nowhere near everywhere: {before:?}"
    );
    let started = std::time::Instant::now();
    revoke()?;
    let mut last = Vec::new();
    eventually(REVOCATION_BOUND, what, || {
        last = statuses(stack, token)?;
        Ok(last == [401; 3])
    })
    .map_err(|e| {
        e.context(format!(
            "last statuses (users, images, inference): {last:?}"
        ))
    })?;
    println!(
        "{what}: the old access token got 401 from users, images and inference after {} ms",
        started.elapsed().as_millis()
    );
    Ok(())
}

fn a_disabled_account_s_token_is_refused_by_every_service_within_seconds(
    stack: &mut Stack,
) -> Result<()> {
    let (_, session) = new_session(stack, "disabled")?;
    let admin = admin_token(stack)?;
    revocation_reaches_every_service(stack, "disable", &session.access, || {
        let response = client(stack.ports(), None)?
            .patch(url(
                stack.ports(),
                "users.localhost",
                &format!("/admin/users/{}", session.id),
            ))
            .bearer_auth(&admin)
            .json(&json!({ "disabled": true }))
            .send()?;
        ensure!(
            response.status() == 200,
            "disable answered {}",
            response.status()
        );
        Ok(())
    })
}

fn a_logged_out_token_is_refused_by_every_service_within_seconds(stack: &mut Stack) -> Result<()> {
    let (_, session) = new_session(stack, "logout")?;
    revocation_reaches_every_service(stack, "logout", &session.access, || {
        let response = client(stack.ports(), None)?
            .post(url(stack.ports(), "users.localhost", "/logout"))
            .json(&json!({ "refresh_token": session.refresh }))
            .send()?;
        ensure!(
            response.status() == 204,
            "logout answered {}",
            response.status()
        );
        Ok(())
    })
}

fn a_reused_refresh_token_s_session_is_refused_by_every_service_within_seconds(
    stack: &mut Stack,
) -> Result<()> {
    let (_, session) = new_session(stack, "reuse")?;
    let client = client(stack.ports(), None)?;
    let refresh = |token: &str| {
        client
            .post(url(stack.ports(), "users.localhost", "/token/refresh"))
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let rotated = refresh(&session.refresh)?;
    ensure!(
        rotated.status() == 200,
        "refresh answered {}",
        rotated.status()
    );
    let current = rotated.json::<Value>()?["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("refresh answer has no token"))?;
    revocation_reaches_every_service(stack, "refresh-token reuse", &current, || {
        let reused = refresh(&session.refresh)?;
        ensure!(reused.status() == 401, "reuse answered {}", reused.status());
        Ok(())
    })
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

/// A killed replica refuses connections: the gateway retries GETs and POSTs alike on another
/// server (the POST's body replayed from the failover's buffer), so none of them fails.
fn killing_a_replica_under_load_loses_no_get_and_no_post(stack: &mut Stack) -> Result<()> {
    // Bounded: 3 workers of at most 600 requests each, never past 60 s; the load stops once 300
    // requests went out after the kill.
    let load = Load::start(stack.ports(), 3, 600, Duration::from_secs(60), get_or_post)?;
    load.wait_for(40, Duration::from_secs(30))?;
    let killed = stack.kill("users-1", SIGKILL);
    let before = load.done();
    let after_kill = load.wait_for(before + 300, Duration::from_secs(30));
    let report = load.finish()?;
    println!(
        "users-1 killed under a GET/POST load: {} of {} requests failed",
        report.failures.len(),
        report.done
    );
    stack.restart("users-1")?;
    killed?;
    after_kill?;
    ensure!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.done,
        &report.failures[..report.failures.len().min(5)]
    );
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
        on_stack(
            "a_body_over_the_users_limit_gets_a_problem_413_and_one_at_the_limit_passes",
            a_body_over_the_users_limit_gets_a_problem_413_and_one_at_the_limit_passes,
        ),
        Trial::test(
            "identity_headers_sent_by_a_client_never_reach_a_service",
            || {
                identity_headers_sent_by_a_client_never_reach_a_service()
                    .map_err(|e| Failed::from(format!("{e:#}")))
            },
        ),
        Trial::test(
            "a_malformed_admin_allow_list_closes_admin_to_everyone",
            || {
                a_malformed_admin_allow_list_closes_admin_to_everyone()
                    .map_err(|e| Failed::from(format!("{e:#}")))
            },
        ),
        Trial::test("a_replica_whose_address_times_out_loses_no_post", || {
            a_replica_whose_address_times_out_loses_no_post()
                .map_err(|e| Failed::from(format!("{e:#}")))
        }),
        Trial::test("a_stray_comma_in_the_auth_group_is_skipped", || {
            a_stray_comma_in_the_auth_group_is_skipped().map_err(|e| Failed::from(format!("{e:#}")))
        }),
        Trial::test("a_stray_comma_in_the_admin_allow_list_is_skipped", || {
            a_stray_comma_in_the_admin_allow_list_is_skipped()
                .map_err(|e| Failed::from(format!("{e:#}")))
        }),
        Trial::test(
            "logins_and_registrations_are_limited_per_address_at_the_gateway",
            || {
                logins_and_registrations_are_limited_per_address_at_the_gateway()
                    .map_err(|e| Failed::from(format!("{e:#}")))
            },
        ),
        Trial::test(
            "health_readiness_metrics_and_internal_endpoints_are_not_served_on_the_public_entrypoint",
            || {
                health_readiness_metrics_and_internal_endpoints_are_not_served_on_the_public_entrypoint()
                    .map_err(|e| Failed::from(format!("{e:#}")))
            },
        ),
        on_stack(
            "every_hostile_request_gets_a_clear_4xx_and_nothing_is_lost",
            hostile::every_hostile_request_gets_a_clear_4xx_and_nothing_is_lost,
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
            "a_disabled_account_s_token_is_refused_by_every_service_within_seconds",
            a_disabled_account_s_token_is_refused_by_every_service_within_seconds,
        ),
        on_stack(
            "a_logged_out_token_is_refused_by_every_service_within_seconds",
            a_logged_out_token_is_refused_by_every_service_within_seconds,
        ),
        on_stack(
            "a_reused_refresh_token_s_session_is_refused_by_every_service_within_seconds",
            a_reused_refresh_token_s_session_is_refused_by_every_service_within_seconds,
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
            "killing_a_replica_under_load_loses_no_get_and_no_post",
            killing_a_replica_under_load_loses_no_get_and_no_post,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    shutdown();
    conclusion.exit_code()
}
