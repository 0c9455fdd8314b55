//! The attack suite: schemathesis (PyPI, hash-pinned in `xtask/attack-requirements.txt`)
//! against each service's own OpenAPI document, on a native stack of its own. It sends examples,
//! boundary values and random requests to every operation, and follows links between them: the
//! users document's own (register → log in → refresh → log out) and those schemathesis infers
//! from the images document (upload → download → delete), with an admin token for the admin
//! operations. Any failure of the checks below fails the test with schemathesis'
//! report, which names the seed to replay it with.

#[allow(dead_code)]
mod gateway_support;

use std::{process::ExitCode, time::Instant};

use anyhow::{ensure, Result};
use gateway_support::*;
use libtest_mimic::{Arguments, Failed, Trial};
use xtask::stack::Stack;

/// What every answer is held to: no 5xx; only documented statuses, content types and bodies;
/// 405 for an undocumented method; 401 for a secured operation called without a token; 404 for
/// a resource after its deletion.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,unsupported_method,ignored_auth,use_after_free";

/// Generated requests per operation and phase: about a minute for the three services.
const MAX_EXAMPLES: &str = "40";

const REQUIREMENTS_FILE: &str = "xtask/attack-requirements.txt";

fn schemathesis_finds_nothing(stack: &mut Stack, service: &str) -> Result<()> {
    xtask::tools::ensure_pip_file(&xtask::tools::root().join(REQUIREMENTS_FILE))?;
    let ports = stack.ports().clone();
    let port = match service {
        "users" => ports.users[0],
        "images" => ports.images,
        _ => ports.inference,
    };
    let admin = login(
        &client(&ports, None)?,
        &ports,
        ADMIN_USERNAME,
        ADMIN_PASSWORD,
    )?;
    // Hypothesis keeps its example database in the working directory.
    let workdir = tempfile::Builder::new()
        .prefix("forgettable-attack-")
        .tempdir()?;
    let started = Instant::now();
    let output = std::process::Command::new(xtask::tools::venv_bin("schemathesis")?)
        .current_dir(workdir.path())
        .args(["run", &format!("http://127.0.0.1:{port}/openapi.json")])
        .args([
            "--checks",
            CHECKS,
            "--max-examples",
            MAX_EXAMPLES,
            "--no-color",
        ])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated,") || l.contains("Seed:") || l.contains("API Links:"))
        .map(str::trim)
        .collect();
    println!(
        "{service}: {} ({:.0} s)",
        summary.join("; "),
        started.elapsed().as_secs_f64()
    );
    ensure!(
        output.status.success(),
        "schemathesis found failures in {service}'s API:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The stateful phase must have had links to follow: users' own (how many of them a run
    // follows depends on what it generates: 1 to 3 seen) and the many it infers for images, of
    // which every run so far followed 6 to 9.
    let (covered, selected) = links(&report).unwrap_or((0, 0));
    match service {
        "users" => ensure!(
            selected >= 5,
            "users' document lost its links ({selected} selected):\n{report}"
        ),
        "images" => ensure!(
            covered > 0,
            "no link of images' API was followed:\n{report}"
        ),
        _ => {}
    }
    Ok(())
}

/// `(N, M)` of schemathesis' `API Links: N covered / M selected / …` line.
fn links(report: &str) -> Option<(u32, u32)> {
    let line = report.lines().find(|l| l.contains("API Links:"))?;
    let mut numbers = line
        .split("API Links:")
        .nth(1)?
        .split('/')
        .map(|part| part.split_whitespace().next()?.parse().ok());
    Some((numbers.next()??, numbers.next()??))
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One stack; schemathesis runs one service at a time.
    args.test_threads = Some(1);
    let trials = ["users", "images", "inference"]
        .into_iter()
        .map(|service| {
            Trial::test(
                format!("schemathesis_finds_no_failure_in_{service}"),
                move || {
                    with_stack(|stack| schemathesis_finds_nothing(stack, service))
                        .map_err(|e| Failed::from(format!("{e:#}")))
                },
            )
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    shutdown();
    conclusion.exit_code()
}
