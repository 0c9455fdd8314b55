//! The Compose stack for real, on this machine's Docker engine: `cargo xtask docker up` (images
//! built locally, nothing pulled), then the suite's promises through the published gateway on
//! 127.0.0.1:443 (HTTPS, the certificate of the local authority) and :80 (the redirect to it),
//! then `down --volumes`, which must leave nothing of the project behind.
//!
//! `cargo xtask test` runs this file (it is not part of a plain `cargo test`: it takes the
//! machine's port 80, 443, 8080 and 9090 and a few minutes). Without an engine the first test fails
//! and says how to get one. The tests run in order on one stack; those that stop a container
//! start it again before they end.

#[allow(dead_code)]
mod gateway_support;

use std::{
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use gateway_support::{
    client, download_sha256, eventually, new_user, sample_png, served_by, upload, url, Load,
};
use reqwest::blocking::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};
use xtask::{
    docker::{DownArgs, Engine, UpArgs, PROJECT},
    stack::Ports,
};

/// The stack's published ports as the gateway tests' helpers expect them.
fn ports() -> Ports {
    Ports {
        web: gateway_support::HTTPS_PORT,
        ..Ports::native_defaults()
    }
}

fn engine() -> Result<Engine> {
    Engine::find()
}

fn compose(args: &[&str]) -> Result<()> {
    let status = engine()?.compose().args(args).status()?;
    ensure!(status.success(), "docker compose {args:?} failed: {status}");
    Ok(())
}

fn wait_healthy() -> Result<()> {
    engine()?.wait_healthy(Duration::from_secs(180))
}

fn stack_comes_up_healthy_with_every_image_built_locally() -> Result<()> {
    let started = Instant::now();
    engine()?.up(&UpArgs {
        // `cargo xtask test` has just built the release binaries.
        no_build: true,
        rebuild_base: false,
    })?;
    println!("docker up: {:.0} s", started.elapsed().as_secs_f64());
    let listed = Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={PROJECT}"),
        ])
        .args(["--format", "{{.Names}} {{.Image}}"])
        .output()?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    println!("{listed}");
    for service in [
        "traefik",
        "users-1",
        "users-2",
        "users-3",
        "users-backup",
        "images",
    ] {
        ensure!(
            listed.contains(service),
            "{service} is not running:\n{listed}"
        );
    }
    Ok(())
}

fn anonymous_requests_go_round_robin_over_the_three_replicas() -> Result<()> {
    gateway_support::anonymous_requests_are_spread_evenly(&ports())
}

fn bearer_traffic_reaches_only_the_authenticated_group() -> Result<()> {
    gateway_support::authenticated_requests_stay_in_the_group(
        &ports(),
        &gateway_support::AUTH_GROUP,
    )
}

fn the_user_journey_works_with_the_real_model() -> Result<()> {
    gateway_support::user_journey_with_resmem(&ports())
}

fn admin_pages_refuse_a_user_in_the_service_and_an_outside_address_at_the_gateway() -> Result<()> {
    // From the Docker host: the allow-list lets the edge network's gateway in, the service
    // refuses a non-admin token.
    let client = client(&ports(), None)?;
    let (_, token) = new_user(&client, &ports(), "composeadmin")?;
    let response = client
        .get(url(&ports(), "users.localhost", "/admin/stats"))
        .bearer_auth(&token)
        .send()?;
    ensure!(
        response.status() == 403,
        "a user token got {}",
        response.status()
    );
    ensure!(
        !served_by(&response).is_empty(),
        "the service did not answer the 403"
    );
    ensure!(
        response.headers()["content-type"].to_str()? == "application/problem+json",
        "the service's 403 is not problem+json"
    );

    // From a container on the edge network, outside ADMIN_ALLOWED_CIDRS: the gateway refuses.
    // The error-page server is such a container and has wget; running the client there adds no
    // container of its own to the network.
    let errors = xtask::tools::output(engine()?.compose().args(["ps", "--quiet", "errors"]))?;
    // The certificate names the public hosts, not `traefik`: this client checks nothing of it.
    let out = Command::new("docker")
        .args([
            "exec",
            errors.trim(),
            "wget",
            "-S",
            "-O",
            "-",
            "--no-check-certificate",
        ])
        .args(["--header", "Host: users.localhost"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("https://traefik/admin/stats")
        .output()?;
    let headers = String::from_utf8_lossy(&out.stderr);
    ensure!(
        headers.contains(" 403 "),
        "a client outside the allow-list was not refused:\n{headers}"
    );
    ensure!(
        !headers.to_ascii_lowercase().contains("x-served-by"),
        "the refused request reached a service:\n{headers}"
    );
    Ok(())
}

fn a_stopped_images_service_gets_nginx_503_page() -> Result<()> {
    compose(&["stop", "images"])?;
    let result = gateway_support::stopped_images_get_the_custom_503_page(&ports());
    compose(&["start", "images"])?;
    wait_healthy()?;
    result
}

fn killing_users_1_under_load_loses_no_get_and_no_post() -> Result<()> {
    // Bounded: at most 2,000 requests per worker, and never past 60 s; the load stops once 300
    // requests went out after the kill.
    let load = Load::start(
        &ports(),
        4,
        2000,
        Duration::from_secs(60),
        gateway_support::get_or_post,
    )?;
    load.wait_for(40, Duration::from_secs(10))?;
    let container = xtask::tools::output(engine()?.compose().args(["ps", "--quiet", "users-1"]))?;
    let kill = Command::new("docker")
        .args(["kill", container.trim()])
        .stdout(std::process::Stdio::null())
        .status();
    let before = load.done();
    let _ = load.wait_for(before + 300, Duration::from_secs(30));
    let report = load.finish()?;
    println!(
        "users-1 killed under load: {} of {} requests failed {:?}",
        report.failures.len(),
        report.done,
        report.failures
    );
    compose(&["start", "users-1"])?;
    wait_healthy()?;
    ensure!(kill.is_ok_and(|s| s.success()), "docker kill failed");
    ensure!(
        report.done >= before + 300,
        "only {} requests were sent after the kill",
        report.done - before
    );
    ensure!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.done,
        report.failures
    );
    Ok(())
}

fn prometheus_has_every_target_up() -> Result<()> {
    let client = Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut last = String::new();
    let result = eventually(Duration::from_secs(60), "every target up", || {
        let targets: Value = client
            .get("http://127.0.0.1:9090/api/v1/targets?state=active")
            .send()?
            .json()?;
        let active = targets["data"]["activeTargets"]
            .as_array()
            .context("no targets")?;
        let down: Vec<String> = active
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| format!("{} {}", t["labels"]["instance"], t["health"]))
            .collect();
        last = format!("{} targets, not up: {down:?}", active.len());
        Ok(active.len() >= 8 && down.is_empty())
    });
    println!("Prometheus: {last}");
    result
}

fn postgres_keeps_users_and_images_across_a_restart() -> Result<()> {
    let client = client(&ports(), None)?;
    let (username, token) = new_user(&client, &ports(), "composekept")?;
    let png = sample_png()?;
    let image_id = upload(&client, &ports(), &token, png.clone())?;

    compose(&["restart"])?;
    wait_healthy()?;

    let client = gateway_support::client(&ports(), None)?;
    let mut token = String::new();
    eventually(Duration::from_secs(30), "login after the restart", || {
        token = gateway_support::login(&client, &ports(), &username, "correct horse battery")?;
        Ok(true)
    })?;
    ensure!(
        download_sha256(&client, &ports(), &token, &image_id)? == hex::encode(Sha256::digest(&png)),
        "the image came back different after the restart"
    );
    Ok(())
}

fn down_with_volumes_leaves_nothing_of_the_project() -> Result<()> {
    engine()?.down(&DownArgs { volumes: true })?;
    gateway_support::nothing_labelled_is_left(
        &format!("com.docker.compose.project={PROJECT}"),
        &["container", "network", "volume"],
    )
}

fn main() -> ExitCode {
    gateway_support::run_stack_tests(
        (
            "stack_comes_up_healthy_with_every_image_built_locally",
            stack_comes_up_healthy_with_every_image_built_locally,
        ),
        vec![
            (
                "plain_http_redirects_to_https_which_carries_hsts",
                gateway_support::plain_http_redirects_to_https_which_carries_hsts,
            ),
            (
                "anonymous_requests_go_round_robin_over_the_three_replicas",
                anonymous_requests_go_round_robin_over_the_three_replicas,
            ),
            (
                "bearer_traffic_reaches_only_the_authenticated_group",
                bearer_traffic_reaches_only_the_authenticated_group,
            ),
            (
                "the_user_journey_works_with_the_real_model",
                the_user_journey_works_with_the_real_model,
            ),
            (
                "admin_pages_refuse_a_user_in_the_service_and_an_outside_address_at_the_gateway",
                admin_pages_refuse_a_user_in_the_service_and_an_outside_address_at_the_gateway,
            ),
            (
                "a_stopped_images_service_gets_nginx_503_page",
                a_stopped_images_service_gets_nginx_503_page,
            ),
            (
                "killing_users_1_under_load_loses_no_get_and_no_post",
                killing_users_1_under_load_loses_no_get_and_no_post,
            ),
            (
                "prometheus_has_every_target_up",
                prometheus_has_every_target_up,
            ),
            (
                "postgres_keeps_users_and_images_across_a_restart",
                postgres_keeps_users_and_images_across_a_restart,
            ),
        ],
        (
            "down_with_volumes_leaves_nothing_of_the_project",
            down_with_volumes_leaves_nothing_of_the_project,
        ),
    )
}
