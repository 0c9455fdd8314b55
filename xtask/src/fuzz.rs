//! `cargo xtask fuzz`: runs each fuzz target of the `fuzz/` crate for a bounded time, starting
//! from its committed seed corpus (`fuzz/corpus/<target>/`), and fails on any crash, printing
//! where libFuzzer saved the input and how to replay it.
//!
//! The targets are built by cargo-fuzz (installed when missing) on the stable toolchain, without
//! a sanitizer (`--sanitizer none`, the sanitizers need nightly): a panic, an abort (the targets'
//! heap bound), a timeout or running out of memory is a crash. New inputs found while fuzzing go
//! to `fuzz/scratch/<target>/` (not committed; kept between runs), so the seed corpus stays as
//! committed. Each target's libFuzzer output is in `fuzz/target/logs/<target>.log`.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::tools::{self, step};

/// The fuzz targets, as named in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 2] = ["image_screening", "upload_form"];
/// Seconds each target runs unless told otherwise.
pub const DEFAULT_SECONDS: u64 = 30;
/// The cargo-fuzz release installed when none is found.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// A single input taking longer than this is a crash (a denial of service).
const INPUT_TIMEOUT_SECONDS: u64 = 25;

#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seconds each target runs.
    #[arg(long, default_value_t = DEFAULT_SECONDS)]
    pub seconds: u64,
    /// Only the targets whose names contain this.
    pub filter: Option<String>,
}

/// How one target's run went.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub executions: Option<u64>,
    pub seconds: f64,
    /// The input that crashed the target, as libFuzzer saved it.
    pub crash: Option<PathBuf>,
    pub passed: bool,
}

impl Outcome {
    /// One line for the log: `fuzz image_screening: ok, 41230 executions in 31 s`.
    pub fn line(&self) -> String {
        let executions = self
            .executions
            .map_or_else(|| "? executions".to_owned(), |n| format!("{n} executions"));
        let verdict = if self.passed { "ok" } else { "FAILED" };
        format!(
            "fuzz {}: {verdict}, {executions} in {:.0} s",
            self.target, self.seconds
        )
    }
}

pub fn run(args: FuzzArgs) -> Result<()> {
    let targets: Vec<&'static str> = TARGETS
        .into_iter()
        .filter(|t| args.filter.as_ref().is_none_or(|f| t.contains(f.as_str())))
        .collect();
    if targets.is_empty() {
        bail!(
            "no fuzz target matches; the targets are {}",
            TARGETS.join(", ")
        );
    }
    let outcomes = fuzz(&targets, args.seconds)?;
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if failed > 0 {
        bail!("{failed} fuzz target(s) failed");
    }
    Ok(())
}

/// Every target for [`DEFAULT_SECONDS`], as a phase of a test run would count it (not yet called
/// by `cargo xtask test`, see fuzz/README.md). Returns how many passed and failed; failing to
/// install or build counts as one failure, never as a skip.
pub fn test_phase() -> (u64, u64) {
    match fuzz(&TARGETS, DEFAULT_SECONDS) {
        Ok(outcomes) => {
            let passed = outcomes.iter().filter(|o| o.passed).count() as u64;
            (passed, outcomes.len() as u64 - passed)
        }
        Err(e) => {
            println!("fuzz: FAILED: {e:#}");
            (0, 1)
        }
    }
}

/// Builds the targets and runs each for `seconds`, printing one line per target.
pub fn fuzz(targets: &[&'static str], seconds: u64) -> Result<Vec<Outcome>> {
    let dir = tools::root().join("fuzz");
    ensure_cargo_fuzz()?;
    step("building the fuzz targets (cargo fuzz build, stable toolchain, no sanitizer)");
    tools::run(&mut cargo_fuzz(&dir, "build")).context(
        "cannot build the fuzz targets: cargo-fuzz compiles libFuzzer, which needs a C++ compiler",
    )?;
    let logs = dir.join("target").join("logs");
    fs::create_dir_all(&logs)?;
    let mut outcomes = Vec::new();
    for target in targets {
        step(format!("fuzzing {target} for {seconds} s"));
        let outcome = fuzz_one(&dir, target, seconds, &logs.join(format!("{target}.log")))?;
        println!("{}", outcome.line());
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn fuzz_one(dir: &Path, target: &'static str, seconds: u64, log: &Path) -> Result<Outcome> {
    let scratch = dir.join("scratch").join(target);
    let seeds = dir.join("corpus").join(target);
    fs::create_dir_all(&scratch)?;
    if !seeds.is_dir() {
        bail!("the seed corpus {} is missing", seeds.display());
    }
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let started = Instant::now();
    let status = cargo_fuzz(dir, "run")
        .arg(target)
        // New inputs go to the first folder only: the committed seeds are read, never written.
        .args([&scratch, &seeds])
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot start cargo fuzz run")?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(log).unwrap_or_default();
    let crash = saved_input(&text).map(|p| dir.join(p));
    let passed = status.success() && crash.is_none();
    if !passed {
        println!("--- last lines of {} ---", log.display());
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            println!("{line}");
        }
        match &crash {
            Some(input) => println!(
                "fuzz {target}: crashing input saved in {}; replay it with \
                 `cd fuzz && cargo fuzz run --sanitizer none {target} {}`",
                input.display(),
                input.display()
            ),
            None => println!("fuzz {target}: cargo fuzz run failed with {status}"),
        }
    }
    Ok(Outcome {
        target,
        executions: executions(&text),
        seconds: elapsed,
        crash,
        passed,
    })
}

/// `cargo fuzz <subcommand>` in `dir`, as every run here builds: stable, no sanitizer, its own
/// target folder.
fn cargo_fuzz(dir: &Path, subcommand: &str) -> std::process::Command {
    let mut command = crate::cargo::command();
    command
        .current_dir(dir)
        .args(["fuzz", subcommand, "--sanitizer", "none"])
        .arg("--target-dir")
        .arg(dir.join("target"));
    command
}

fn ensure_cargo_fuzz() -> Result<()> {
    let found = crate::cargo::command()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    tools::ensure_apt(&[("c++", "g++")])?;
    step(format!(
        "cargo-fuzz is not installed: installing it (cargo install cargo-fuzz --version {CARGO_FUZZ_VERSION} --locked)"
    ));
    tools::run(crate::cargo::command().args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
    .context("cannot install cargo-fuzz")
}

/// The input libFuzzer saved on a crash: `Test unit written to fuzz/artifacts/…/crash-…`.
fn saved_input(log: &str) -> Option<PathBuf> {
    log.lines().rev().find_map(|line| {
        line.split_once("Test unit written to ")
            .map(|(_, path)| PathBuf::from(path.trim()))
    })
}

/// Inputs run, from libFuzzer's final statistics, or its `Done N runs` line.
fn executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| {
        if let Some(n) = line.trim().strip_prefix("stat::number_of_executed_units:") {
            return n.trim().parse().ok();
        }
        line.trim()
            .strip_prefix("Done ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executions_come_from_the_final_statistics() {
        let log = "#2048\tpulse  cov: 1 ft: 2 corp: 3/4b exec/s: 5\n\
                   Done 9000 runs in 31 second(s)\n\
                   stat::number_of_executed_units: 9001\n\
                   stat::average_exec_per_sec:     290\n";
        assert_eq!(executions(log), Some(9001));
        assert_eq!(executions("Done 12 runs in 1 second(s)"), Some(12));
        assert_eq!(executions("nothing"), None);
    }

    #[test]
    fn the_crashing_input_is_found_in_the_log() {
        let log = "==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='fuzz/artifacts/upload_form/'; Test unit written to fuzz/artifacts/upload_form/crash-abc\n\
                   Base64: AAA=\n";
        assert_eq!(
            saved_input(log),
            Some(PathBuf::from("fuzz/artifacts/upload_form/crash-abc"))
        );
        assert_eq!(saved_input("Done 12 runs in 1 second(s)"), None);
    }
}
