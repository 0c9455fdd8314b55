//! The Compose stack for real, on this machine's Docker engine: `cargo xtask docker up` (images
//! built locally, nothing pulled), then the suite's promises through the published gateway on
//! 127.0.0.1:80, then `down --volumes`, which must leave nothing of the project behind.
//!
//! `cargo xtask test` runs this file (it is not part of a plain `cargo test`: it takes the
//! machine's port 80, 8080 and 9090 and a few minutes). Without an engine the first test fails
//! and says how to get one. The tests run in order on one stack; those that stop a container
//! start it again before they end.

#[allow(dead_code)]
mod gateway_support;

use std::{
    collections::BTreeMap,
    process::{Command, ExitCode},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use gateway_support::{
    client, download_sha256, eventually, new_user, sample_png, served_by, upload, url,
};
use libtest_mimic::{Arguments, Failed, Trial};
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
        web: 80,
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
    gateway_support::authenticated_requests_stay_in_the_group(&ports())
}

fn the_user_journey_works_with_the_real_model() -> Result<()> {
    let predicted = gateway_support::user_journey(&ports())?;
    ensure!(
        predicted["model"]["name"] == "resmem",
        "the image serves another model than ResMem: {predicted}"
    );
    Ok(())
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
    let out = Command::new("docker")
        .args(["exec", errors.trim(), "wget", "-S", "-O", "-"])
        .args(["--header", "Host: users.localhost"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("http://traefik/admin/stats")
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
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (failures, done, stop) = (failures.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || -> Result<()> {
                let client = client(&ports(), None)?;
                // Bounded: at most 2,000 requests per worker, and never past 60 s; the test stops
                // the workers once 300 requests went out after the kill.
                let deadline = Instant::now() + Duration::from_secs(60);
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    // GETs and POSTs alike: a POST's body must survive the replica's death too.
                    let post = done.load(Ordering::Relaxed) % 2 == 1;
                    let answer = if post {
                        client
                            .post(url(&ports(), "users.localhost", "/token/refresh"))
                            .json(&serde_json::json!({ "refresh_token": "not-a-token" }))
                            .send()
                    } else {
                        client
                            .get(url(&ports(), "users.localhost", "/.well-known/jwks.json"))
                            .send()
                    };
                    let expected = if post { 401 } else { 200 };
                    match answer {
                        Ok(r) if r.status() == expected && !served_by(&r).is_empty() => {}
                        other => {
                            let what = match other {
                                Ok(r) => format!(
                                    "{} from {:?}: {}",
                                    r.status(),
                                    served_by(&r),
                                    r.text().unwrap_or_default()
                                ),
                                Err(e) => format!("{e:#}"),
                            };
                            failures
                                .lock()
                                .map_err(|_| anyhow::anyhow!("lock"))?
                                .push(what);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "load started", || {
        Ok(done.load(Ordering::Relaxed) >= 40)
    })?;
    let container = xtask::tools::output(engine()?.compose().args(["ps", "--quiet", "users-1"]))?;
    let kill = Command::new("docker")
        .args(["kill", container.trim()])
        .stdout(std::process::Stdio::null())
        .status();
    let before = done.load(Ordering::Relaxed);
    let _ = eventually(
        Duration::from_secs(30),
        "load went on after the kill",
        || Ok(done.load(Ordering::Relaxed) >= before + 300),
    );
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
    }
    let failures = failures
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .clone();
    let done = done.load(Ordering::Relaxed);
    println!(
        "users-1 killed under load: {} of {done} requests failed {failures:?}",
        failures.len()
    );
    compose(&["start", "users-1"])?;
    wait_healthy()?;
    ensure!(kill.is_ok_and(|s| s.success()), "docker kill failed");
    ensure!(
        done >= before + 300,
        "only {} requests were sent after the kill",
        done - before
    );
    ensure!(
        failures.is_empty(),
        "{} of {done} requests failed: {failures:?}",
        failures.len()
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
    let label = format!("label=com.docker.compose.project={PROJECT}");
    for (what, args) in [
        (
            "container",
            vec!["ps", "--all", "--quiet", "--filter", &label],
        ),
        (
            "network",
            vec!["network", "ls", "--quiet", "--filter", &label],
        ),
        (
            "volume",
            vec!["volume", "ls", "--quiet", "--filter", &label],
        ),
    ] {
        let out = Command::new("docker").args(&args).output()?;
        let left = String::from_utf8_lossy(&out.stdout);
        ensure!(
            left.trim().is_empty(),
            "a {what} of {PROJECT} is left: {left}"
        );
    }
    Ok(())
}

const UP: &str = "stack_comes_up_healthy_with_every_image_built_locally";
const DOWN: &str = "down_with_volumes_leaves_nothing_of_the_project";

fn trial(name: &'static str, test: fn() -> Result<()>) -> Trial {
    Trial::test(name, move || {
        test().map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = vec![
        trial(UP, stack_comes_up_healthy_with_every_image_built_locally),
        trial(
            "anonymous_requests_go_round_robin_over_the_three_replicas",
            anonymous_requests_go_round_robin_over_the_three_replicas,
        ),
        trial(
            "bearer_traffic_reaches_only_the_authenticated_group",
            bearer_traffic_reaches_only_the_authenticated_group,
        ),
        trial(
            "the_user_journey_works_with_the_real_model",
            the_user_journey_works_with_the_real_model,
        ),
        trial(
            "admin_pages_refuse_a_user_in_the_service_and_an_outside_address_at_the_gateway",
            admin_pages_refuse_a_user_in_the_service_and_an_outside_address_at_the_gateway,
        ),
        trial(
            "a_stopped_images_service_gets_nginx_503_page",
            a_stopped_images_service_gets_nginx_503_page,
        ),
        trial(
            "killing_users_1_under_load_loses_no_get_and_no_post",
            killing_users_1_under_load_loses_no_get_and_no_post,
        ),
        trial(
            "prometheus_has_every_target_up",
            prometheus_has_every_target_up,
        ),
        trial(
            "postgres_keeps_users_and_images_across_a_restart",
            postgres_keeps_users_and_images_across_a_restart,
        ),
        trial(DOWN, down_with_volumes_leaves_nothing_of_the_project),
    ];
    // A name filter (`cargo xtask test -- journey`) may select tests without the first and the
    // last: bring the stack up before them and take it down after them all the same.
    let filter = args.filter.clone().unwrap_or_default();
    let selects = |name: &str| name.contains(filter.as_str());
    let (first, last) = (UP, DOWN);
    let middle_selected = !filter.is_empty()
        && trials
            .iter()
            .any(|t| t.name() != first && t.name() != last && selects(t.name()));
    if middle_selected && !selects(first) {
        if let Err(e) = stack_comes_up_healthy_with_every_image_built_locally() {
            eprintln!("the Compose stack did not come up: {e:#}");
            let _ = engine().and_then(|e| e.down(&DownArgs { volumes: true }));
            return ExitCode::FAILURE;
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if middle_selected && !selects(last) {
        let _ = engine().and_then(|e| e.down(&DownArgs { volumes: true }));
    }
    conclusion.exit_code()
}
