//! `cargo xtask test`: every test the project has, with real components.
//!
//! 1. Prepares what the tests need: tools (installed when missing), the converted model.
//! 2. Starts a throwaway PostgreSQL so the database tests run against both SQLite and PostgreSQL.
//! 3. Builds the binaries and runs `cargo test` over the whole workspace: unit tests,
//!    integration tests over real HTTP, end-to-end tests through the real gateway.
//! 4. Runs the configuration checks with the real tools.
//!
//! It ends with one summary line `N passed, M failed`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{bail, Result};

use crate::{
    checks, model,
    postgres::Postgres,
    stack,
    tools::{self, step},
};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Skip the configuration checks (Traefik, promtool, compose schema, hadolint).
    #[arg(long)]
    pub no_checks: bool,
    /// Run only the configuration checks.
    #[arg(long, conflicts_with = "no_checks")]
    pub checks_only: bool,
    /// Passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Reads a `test result: ok. 5 passed; 0 failed; 1 ignored; …` line.
fn parse_result_line(line: &str, tally: &mut Tally) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split([';', '.']) {
        let mut words = part.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            if let Ok(n) = n.parse::<u64>() {
                match what {
                    "passed" => tally.passed += n,
                    "failed" => tally.failed += n,
                    "ignored" => tally.ignored += n,
                    _ => {}
                }
            }
        }
    }
}

fn cargo_tests(args: &TestArgs, postgres: &Postgres) -> Result<Tally> {
    let root = tools::root();
    step("building the workspace (binaries and tests)");
    tools::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--workspace",
        "--bins",
        "--tests",
    ]))?;

    step("running cargo test over the workspace");
    let mut command = Command::new("cargo");
    command
        .current_dir(&root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .arg("--")
        .args(&args.cargo_test_args)
        .env("TEST_POSTGRES_URL", postgres.url())
        .env("FORGETTABLE_BIN_DIR", root.join("target/debug"))
        .stdout(Stdio::piped());
    for (name, value) in stack::test_environment()? {
        command.env(name, value);
    }
    for (name, value) in model::test_environment()? {
        command.env(name, value);
    }
    let mut child = command.spawn()?;
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            parse_result_line(&line, &mut tally);
        }
    }
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        // A compile error or a crashed test binary: count it, never hide it.
        tally.failed += 1;
    }
    Ok(tally)
}

pub fn run(args: TestArgs) -> Result<()> {
    let mut tally = Tally::default();
    if !args.checks_only {
        step("preparing tools and the model for the tests");
        stack::ensure_tools()?;
        model::ensure_for_tests()?;
        let postgres = Postgres::start()?;
        let cargo = cargo_tests(&args, &postgres)?;
        println!(
            "cargo test: {} passed, {} failed, {} ignored",
            cargo.passed, cargo.failed, cargo.ignored
        );
        tally.passed += cargo.passed;
        tally.failed += cargo.failed;
        tally.ignored += cargo.ignored;
    }
    if !args.no_checks {
        step("configuration checks with the real tools");
        for (name, result) in checks::run_all() {
            match result {
                Ok(()) => {
                    println!("check {name}: ok");
                    tally.passed += 1;
                }
                Err(e) => {
                    println!("check {name}: FAILED: {e:#}");
                    tally.failed += 1;
                }
            }
        }
    }
    println!();
    println!(
        "xtask test: {} passed, {} failed",
        tally.passed, tally.failed
    );
    if tally.failed > 0 {
        bail!("{} test(s) or check(s) failed", tally.failed);
    }
    if tally.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cargo_result_line_adds_to_the_tally() {
        let mut tally = Tally::default();
        parse_result_line("test result: ok. 12 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.5s", &mut tally);
        parse_result_line(
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
            &mut tally,
        );
        assert_eq!((tally.passed, tally.failed, tally.ignored), (15, 1, 2));
    }
}
