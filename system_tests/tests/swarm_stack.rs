//! The Swarm stack for real, on this machine's Docker engine: `cargo xtask swarm up` (a
//! single-node swarm, the images built locally), then the suite over HTTPS through the gateway's
//! published ports 443 and 80, scaling, a rolling update and a killed task under load, then
//! `swarm down --volumes`, which must leave nothing of the project behind.
//!
//! `cargo xtask test` runs this file after the Compose stack is down (both publish ports 80 and
//! 443). The tests run in order on one stack; those that change it restore what they change.

#[allow(dead_code)]
mod gateway_support;

use std::{
    collections::BTreeSet,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use gateway_support::{client, eventually, served_by, url, Load, HTTPS_PORT};
use reqwest::blocking::{Client, Response};
use serde_json::json;
use xtask::{
    docker::{UpArgs, CA_CERTIFICATE},
    stack::Ports,
    swarm::{self, DownArgs, STACK},
    tools,
};

fn ports() -> Ports {
    Ports {
        web: HTTPS_PORT,
        ..Ports::native_defaults()
    }
}

fn docker(args: &[&str]) -> Result<String> {
    tools::output(Command::new("docker").args(args))
}

/// The distinct instances that answer `requests` anonymous requests.
fn anonymous_instances(requests: usize) -> Result<BTreeSet<String>> {
    let client = client(&ports(), None)?;
    let mut seen = BTreeSet::new();
    for _ in 0..requests {
        let response = client
            .get(url(&ports(), "users.localhost", "/.well-known/jwks.json"))
            .send()?;
        ensure!(
            response.status() == 200,
            "jwks answered {}",
            response.status()
        );
        seen.insert(served_by(&response));
    }
    Ok(seen)
}

/// Waits until anonymous traffic reaches `n` distinct users tasks: Traefik reads the tasks every
/// 2 s and probes new ones before it sends them traffic.
fn wait_for_instances(n: usize, within: Duration) -> Result<BTreeSet<String>> {
    let mut seen = BTreeSet::new();
    eventually(
        within,
        &format!("{n} users instances behind the gateway"),
        || {
            seen = anonymous_instances(4 * n)?;
            Ok(seen.len() == n)
        },
    )
    .with_context(|| format!("last seen: {seen:?}"))?;
    Ok(seen)
}

fn swarm_up_deploys_healthy_over_https() -> Result<()> {
    let started = Instant::now();
    swarm::up(&UpArgs {
        // `cargo xtask test` has just built the release binaries.
        no_build: true,
        rebuild_base: false,
    })?;
    let seen = wait_for_instances(3, Duration::from_secs(60))?;
    println!(
        "swarm up: {:.0} s until every service was healthy and the gateway reached {seen:?}",
        started.elapsed().as_secs_f64()
    );
    // What the README tells people to run, verbatim but for the address.
    tools::ensure_apt(&[("curl", "curl")])?;
    let out = Command::new("curl")
        .current_dir(tools::root())
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--cacert",
            CA_CERTIFICATE,
        ])
        .args(["--resolve", "users.localhost:443:127.0.0.1"])
        .arg("https://users.localhost/.well-known/jwks.json")
        .output()
        .context("running curl")?;
    ensure!(
        out.status.success(),
        "curl --cacert {CA_CERTIFICATE} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = docker(&[
        "stack",
        "services",
        STACK,
        "--format",
        "{{.Name}} {{.Replicas}}",
    ])?;
    println!("{services}");
    Ok(())
}

fn anonymous_requests_spread_over_the_users_tasks() -> Result<()> {
    let seen = anonymous_instances(30)?;
    ensure!(
        seen == BTreeSet::from(["users-1".into(), "users-2".into(), "users-3".into()]),
        "anonymous requests reached {seen:?}"
    );
    Ok(())
}

fn bearer_traffic_reaches_only_the_authenticated_group() -> Result<()> {
    gateway_support::authenticated_requests_stay_in_the_group(
        &ports(),
        &["users-auth-1", "users-auth-2"],
    )
}

fn the_user_journey_works_over_https_with_the_real_model() -> Result<()> {
    gateway_support::user_journey_with_resmem(&ports())
}

/// Prometheus, which a Swarm does not publish, asked from inside its own task: every users task
/// (found by DNS) and every other service is a target, up.
fn prometheus_scrapes_every_task() -> Result<()> {
    let tasks = docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.swarm.service.name={STACK}_prometheus"),
    ])?;
    let prometheus = tasks
        .split_whitespace()
        .next()
        .context("no Prometheus task runs")?
        .to_owned();
    let mut last = String::new();
    let result = eventually(Duration::from_secs(60), "every target up", || {
        let text = docker(&[
            "exec",
            &prometheus,
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:9090/api/v1/targets?state=active",
        ])?;
        let targets: serde_json::Value = serde_json::from_str(&text)?;
        let active = targets["data"]["activeTargets"]
            .as_array()
            .context("no targets")?;
        let users = active
            .iter()
            .filter(|t| t["labels"]["job"] == "users")
            .count();
        let down: Vec<String> = active
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| {
                format!(
                    "{} {} {}",
                    t["labels"]["job"], t["labels"]["instance"], t["health"]
                )
            })
            .collect();
        last = format!(
            "{} targets, {users} of them users tasks; not up: {down:?}",
            active.len()
        );
        // users 3 + users-auth 2 + users-backup 1; traefik, images, inference, prometheus.
        Ok(users == 6 && active.len() == 10 && down.is_empty())
    });
    println!("Prometheus on the Swarm: {last}");
    result
}

/// Users for the login load: each logs in at most every 4 s, well under the throttle of 10 a
/// minute per user and replica.
const LOGIN_USERS: usize = 4;
const LOGIN_PASSWORD: &str = "correct horse battery";

fn login_users() -> Result<()> {
    let client = client(&ports(), None)?;
    for n in 0..LOGIN_USERS {
        let username = format!("swarmlogin{n}");
        let response = gateway_support::register(&client, &ports(), &username, LOGIN_PASSWORD)?;
        ensure!(
            [201, 409].contains(&response.status().as_u16()),
            "registering {username} answered {}",
            response.status()
        );
    }
    Ok(())
}

/// One login every 2.5 s across the users, 24 a minute: under the gateway's 30 a minute per
/// client address. The rest of the load is `get_or_post`.
fn login(client: &Client, ports: &Ports, n: usize) -> (reqwest::Result<Response>, u16) {
    std::thread::sleep(Duration::from_millis(2500));
    let answer = client
        .post(url(ports, "users.localhost", "/login"))
        .json(&json!({
            "username": format!("swarmlogin{}", n % LOGIN_USERS),
            "password": LOGIN_PASSWORD,
        }))
        .send();
    (answer, 200)
}

/// Logins at 24 a minute and GETs and POSTs as fast as two workers go, all bounded.
fn start_load() -> Result<(Load, Load)> {
    let logins = Load::start(&ports(), 1, 72, Duration::from_secs(180), login)?;
    let requests = Load::start(
        &ports(),
        2,
        20_000,
        Duration::from_secs(180),
        gateway_support::get_or_post,
    )?;
    requests.wait_for(40, Duration::from_secs(10))?;
    Ok((logins, requests))
}

/// Stops the load and fails with every lost request, if any.
fn finish_load(what: &str, (logins, requests): (Load, Load)) -> Result<()> {
    let logins = logins.finish()?;
    let requests = requests.finish()?;
    println!(
        "{what}: {} logins and {} other requests, lost {} and {}",
        logins.done,
        requests.done,
        logins.failures.len(),
        requests.failures.len()
    );
    // The first few losses, on the line a truncated log still shows.
    for failure in logins.failures.iter().chain(&requests.failures).take(3) {
        println!("  lost: {failure}");
    }
    ensure!(
        logins.done > 0 && requests.done > 0,
        "{what}: no load was sent"
    );
    ensure!(
        logins.failures.is_empty() && requests.failures.is_empty(),
        "{what}: lost {:?} {:?}",
        logins.failures,
        requests.failures
    );
    Ok(())
}

fn scaling_users_to_5_spreads_traffic_over_5_instances_and_loses_nothing() -> Result<()> {
    login_users()?;
    let load = start_load()?;
    let started = Instant::now();
    let scaled = docker(&[
        "service",
        "scale",
        "--detach=false",
        &format!("{STACK}_users=5"),
    ]);
    let seen = scaled.and_then(|_| wait_for_instances(5, Duration::from_secs(60)));
    println!("scaled to 5 in {:.0} s", started.elapsed().as_secs_f64());
    let back = docker(&[
        "service",
        "scale",
        "--detach=false",
        &format!("{STACK}_users=3"),
    ])
    .and_then(|_| wait_for_instances(3, Duration::from_secs(60)));
    let lost = finish_load("scale 3 → 5 → 3", load);
    let seen = seen?;
    ensure!(
        seen == (1..=5).map(|n| format!("users-{n}")).collect(),
        "anonymous traffic reached {seen:?}"
    );
    back?;
    lost
}

fn a_rolling_update_of_users_under_login_load_loses_no_request() -> Result<()> {
    let load = start_load()?;
    let started = Instant::now();
    // A changed variable replaces every task, one at a time, the new one first.
    let updated = docker(&[
        "service",
        "update",
        "--detach=false",
        "--env-add",
        &format!("ROLLOUT={}", std::process::id()),
        &format!("{STACK}_users"),
    ]);
    let took = started.elapsed();
    let lost = finish_load("rolling update of users", load);
    updated?;
    println!(
        "rolling update of 3 users tasks: {:.0} s",
        took.as_secs_f64()
    );
    let state = docker(&[
        "service",
        "inspect",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        &format!("{STACK}_users"),
    ])?;
    ensure!(
        state.trim() == "completed",
        "the update ended {:?}, not completed",
        state.trim()
    );
    lost
}

/// The running containers of the users service's tasks.
fn users_containers() -> Result<BTreeSet<String>> {
    Ok(docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.swarm.service.name={STACK}_users"),
    ])?
    .split_whitespace()
    .map(str::to_owned)
    .collect())
}

fn killing_a_users_task_loses_no_request_and_swarm_replaces_it() -> Result<()> {
    let before = users_containers()?;
    let victim = before.iter().next().context("no users task runs")?.clone();
    let load = start_load()?;
    let killed = docker(&["kill", &victim]);
    let sent = load.1.done();
    let _ = load.1.wait_for(sent + 300, Duration::from_secs(30));
    let lost = finish_load("a users task killed", load);
    killed?;
    let mut now = BTreeSet::new();
    eventually(
        Duration::from_secs(60),
        "Swarm replaces the killed task",
        || {
            now = users_containers()?;
            Ok(now.len() == 3 && !now.contains(&victim))
        },
    )?;
    swarm::wait_deployed(Duration::from_secs(60))?;
    wait_for_instances(3, Duration::from_secs(30))?;
    lost
}

fn swarm_down_leaves_nothing_of_the_project() -> Result<()> {
    swarm::down(&DownArgs { volumes: true })?;
    let label = format!("com.docker.stack.namespace={STACK}");
    gateway_support::nothing_labelled_is_left(&label, &["container", "network", "volume"])?;
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
    if state.trim() == "inactive" {
        // `swarm up` made the swarm, so `down` left it, with the bridge the engine made for it:
        // gone, or (when the engine keeps a stale endpoint count, see `swarm::down`) empty.
        let attached = swarm::bridge_endpoints()?;
        ensure!(
            attached.unwrap_or(0) == 0,
            "docker_gwbridge is left after leaving the swarm with {attached:?} container(s) attached"
        );
    } else {
        gateway_support::nothing_labelled_is_left(&label, &["service", "secret"])?;
    }
    Ok(())
}

fn main() -> ExitCode {
    gateway_support::run_stack_tests(
        (
            "swarm_up_deploys_healthy_over_https",
            swarm_up_deploys_healthy_over_https,
        ),
        vec![
            (
                "plain_http_redirects_to_https_which_carries_hsts",
                gateway_support::plain_http_redirects_to_https_which_carries_hsts,
            ),
            (
                "anonymous_requests_spread_over_the_users_tasks",
                anonymous_requests_spread_over_the_users_tasks,
            ),
            (
                "bearer_traffic_reaches_only_the_authenticated_group",
                bearer_traffic_reaches_only_the_authenticated_group,
            ),
            (
                "the_user_journey_works_over_https_with_the_real_model",
                the_user_journey_works_over_https_with_the_real_model,
            ),
            (
                "prometheus_scrapes_every_task",
                prometheus_scrapes_every_task,
            ),
            (
                "scaling_users_to_5_spreads_traffic_over_5_instances_and_loses_nothing",
                scaling_users_to_5_spreads_traffic_over_5_instances_and_loses_nothing,
            ),
            (
                "a_rolling_update_of_users_under_login_load_loses_no_request",
                a_rolling_update_of_users_under_login_load_loses_no_request,
            ),
            (
                "killing_a_users_task_loses_no_request_and_swarm_replaces_it",
                killing_a_users_task_loses_no_request_and_swarm_replaces_it,
            ),
        ],
        (
            "swarm_down_leaves_nothing_of_the_project",
            swarm_down_leaves_nothing_of_the_project,
        ),
    )
}
