//! `cargo xtask test`: every test the project has, with real components.
//!
//! 1. Prepares what the tests need: tools (installed when missing), the converted model.
//! 2. Starts a throwaway PostgreSQL so the database tests run against both SQLite and PostgreSQL.
//! 3. Builds the binaries and runs `cargo test` over the whole workspace: unit tests,
//!    integration tests over real HTTP, end-to-end tests through the real gateway. Everything is
//!    built once, in release mode: the tests, the native stack, the Docker images and
//!    `cargo xtask up` afterwards all use the same binaries.
//!    The system tests (crate `system_tests`) run the binaries of this build and the real model.
//! 4. Runs the Compose stack on the local Docker engine and tests it
//!    (`system_tests/tests/compose_stack.rs`), then the Swarm stack
//!    (`system_tests/tests/swarm_stack.rs`); both publish ports 80 and 443, so one after the other.
//! 5. Runs the configuration checks with the real tools.
//!
//! It prints how long each phase took and ends with one summary line `N passed, M failed`, after
//! the failure reports of the test binaries gathered in one place, so the end of a long log says
//! what failed and why.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Instant,
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
    /// Skip the configuration checks (Traefik, promtool, compose schema, hadolint, OpenAPI).
    #[arg(long)]
    pub no_checks: bool,
    /// Run only the configuration checks.
    #[arg(long, conflicts_with = "no_checks")]
    pub checks_only: bool,
    /// Skip the Compose and Swarm tests on the Docker engine (minutes; CI always runs them).
    #[arg(long)]
    pub no_docker: bool,
    /// Passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
    /// The `failures:` sections of the test binaries' output, shortened.
    reports: Vec<String>,
}

/// Lines of one binary's `failures:` section kept for the closing summary.
const REPORT_LINES: usize = 40;

/// Collects a test binary's `failures:` section: from its first `failures:` line to its
/// `test result:` line.
#[derive(Default)]
struct FailureSection {
    open: bool,
    lines: Vec<String>,
    cut: usize,
}

impl FailureSection {
    fn read(&mut self, line: &str, tally: &mut Tally) {
        if line.trim_start().starts_with("test result: ") {
            if self.open {
                let mut report = std::mem::take(&mut self.lines).join("\n");
                if self.cut > 0 {
                    report.push_str(&format!("\n    … {} more lines above in the log", self.cut));
                }
                tally.reports.push(report);
            }
            *self = Self::default();
        } else if self.open {
            if self.lines.len() < REPORT_LINES {
                self.lines.push(line.to_owned());
            } else {
                self.cut += 1;
            }
        } else if line == "failures:" {
            self.open = true;
        }
    }
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

/// The release build of every binary and test. The system tests run the same command before
/// they start a service, so they never run binaries older than the sources.
pub const RELEASE_BUILD: [&str; 5] = ["build", "--release", "--workspace", "--bins", "--tests"];

fn cargo_tests(args: &TestArgs, postgres: &Postgres, phases: &mut Phases) -> Result<Tally> {
    let root = tools::root();
    step("building the workspace in release mode (binaries and tests)");
    tools::run(
        crate::cargo::command()
            .current_dir(&root)
            .args(RELEASE_BUILD),
    )?;
    // Not part of `--tests`: the Docker tests run only when asked for (`test = false`).
    tools::run(
        crate::cargo::command()
            .current_dir(&root)
            .args(["build", "--release", "--package", "system_tests"])
            .args(DOCKER_TESTS.iter().flat_map(|(test, _)| ["--test", test])),
    )?;
    phases.done("build");

    step("running cargo test over the workspace");
    let mut command = crate::cargo::command();
    command
        .current_dir(&root)
        .args(["test", "--release", "--workspace", "--no-fail-fast"])
        .arg("--")
        .args(&args.cargo_test_args)
        .env("TEST_POSTGRES_URL", postgres.url());
    for (name, value) in test_environment()? {
        command.env(name, value);
    }
    let tally = run_counted(&mut command)?;
    phases.done("cargo test");
    Ok(tally)
}

/// The tests of the stacks on the local Docker engine, run in this order: each brings its stack
/// up, tests it and takes it down.
const DOCKER_TESTS: [(&str, &str); 2] = [("compose_stack", "compose"), ("swarm_stack", "swarm")];

/// `system_tests/tests/<test>.rs`: a stack on the local engine, up, tested, down.
fn docker_tests(
    test: &str,
    phase: &'static str,
    args: &TestArgs,
    phases: &mut Phases,
) -> Result<Tally> {
    step(format!(
        "the {phase} stack on the local Docker engine (system_tests/tests/{test}.rs)"
    ));
    let mut command = crate::cargo::command();
    command
        .current_dir(tools::root())
        .args([
            "test",
            "--release",
            "--package",
            "system_tests",
            "--test",
            test,
        ])
        .arg("--")
        .args(&args.cargo_test_args);
    for (name, value) in test_environment()? {
        command.env(name, value);
    }
    let tally = run_counted(&mut command)?;
    phases.done(phase);
    Ok(tally)
}

fn test_environment() -> Result<Vec<(String, String)>> {
    let mut env = stack::test_environment()?;
    env.extend(model::test_environment()?);
    Ok(env)
}

/// Runs a `cargo test` command, echoing its output and counting its result lines.
fn run_counted(command: &mut Command) -> Result<Tally> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let mut tally = Tally::default();
    let mut section = FailureSection::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            parse_result_line(&line, &mut tally);
            section.read(&line, &mut tally);
        }
    }
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        // A compile error or a crashed test binary: count it, never hide it.
        tally.failed += 1;
    }
    Ok(tally)
}

/// How long each phase took, printed as it ends and again at the end.
struct Phases {
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    fn done(&mut self, name: &'static str) {
        let seconds = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        step(format!("phase {name}: {seconds:.0} s"));
        self.done.push((name, seconds));
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(name, seconds)| format!("{name} {seconds:.0} s"))
            .collect();
        let total: f64 = self.done.iter().map(|(_, s)| s).sum();
        format!("time: {} (total {total:.0} s)", parts.join(", "))
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.reports.extend(other.reports.iter().cloned());
    }
}

pub fn run(args: TestArgs) -> Result<()> {
    let mut tally = Tally::default();
    let mut phases = Phases::new();
    if !args.checks_only {
        step("preparing tools and the model for the tests");
        stack::ensure_tools()?;
        model::ensure_for_tests()?;
        let postgres = Postgres::start()?;
        phases.done("set-up");
        let cargo = cargo_tests(&args, &postgres, &mut phases)?;
        println!(
            "cargo test: {} passed, {} failed, {} ignored",
            cargo.passed, cargo.failed, cargo.ignored
        );
        tally.add(&cargo);
        drop(postgres);
        if !args.no_docker {
            for (test, phase) in DOCKER_TESTS {
                let counted = docker_tests(test, phase, &args, &mut phases)?;
                println!(
                    "{phase} test: {} passed, {} failed",
                    counted.passed, counted.failed
                );
                tally.add(&counted);
            }
        }
    }
    if !args.no_checks {
        step("configuration checks with the real tools");
        // `cargo xtask test -- FILTER` runs only the checks whose names contain FILTER too.
        let filter = args
            .cargo_test_args
            .iter()
            .find(|a| !a.starts_with('-'))
            .cloned();
        for (name, check) in checks::all() {
            if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                continue;
            }
            match check() {
                Ok(()) => {
                    println!("check {name}: ok");
                    tally.passed += 1;
                }
                Err(e) => {
                    println!("check {name}: FAILED: {e:#}");
                    tally.failed += 1;
                    tally.reports.push(format!("check {name}: {e:#}"));
                }
            }
        }
        phases.done("checks");
    }
    println!();
    if !tally.reports.is_empty() {
        println!("what failed, as reported above:");
        for report in &tally.reports {
            println!("{report}");
            println!();
        }
    }
    println!("{}", phases.summary());
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

    #[test]
    fn a_failures_section_is_kept_for_the_summary() {
        let output = "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- b ----\nb lost 2 of 9 POSTs\n\nfailures:\n    b\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\nrunning 1 test\ntest c ... ok\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out";
        let mut tally = Tally::default();
        let mut section = FailureSection::default();
        for line in output.lines() {
            parse_result_line(line, &mut tally);
            section.read(line, &mut tally);
        }
        assert_eq!(tally.reports.len(), 1, "{:?}", tally.reports);
        assert!(tally.reports[0].contains("b lost 2 of 9 POSTs"));
        assert!(!tally.reports[0].contains("test result"));
    }
}
