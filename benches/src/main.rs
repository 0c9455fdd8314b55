//! `cargo xtask bench [part…]` (this binary, built in release): measures the native stack (release build, loopback, free ports,
//! data in a temporary directory) with the `oha` load generator and writes
//! `target/bench/report.md` and `target/bench/report.json`.
//!
//! Every part reports medians over repeated runs and a ratio against a baseline measured in the
//! same invocation, so the figures can be read on any machine:
//!
//! | part | figure | baseline |
//! |---|---|---|
//! | `gateway` | `GET /me` through Traefik to the authenticated group | the same request straight to one replica; Traefik → nginx as the floor |
//! | `users` | login p50/p99 and logins/s per core, `GET /me` at c=32 | the service's own argon2 time (`users_argon2_seconds`) |
//! | `images` | MB/s of 5 MiB uploads at c=8 via the gateway, peak RSS | the same uploads straight to images_service; writing the bytes to the same disk |
//! | `download` | `GET /images/{id}` of a 10 KB image at c=32, direct and via the gateway | `GET /me` direct; Traefik → nginx; nginx serving the file; the replaced service |
//! | `inference` | per engine × precision: images/s and latency at c=1, 2, 8; forward time; load time; RSS | ONNX Runtime from Python on the same files: batch 1/8 × 1/2 threads; tract's ceiling (cores ÷ one-thread forward) |
//! | `cold-start` | process start → `/readyz` 200 per service | — |
//! | `failover` | share of a login storm answered by the backup, share failed | — |

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context, Result};

use xtask::{
    stack::{native_processes, Ports, Stack, StackOptions, USERS_NAMES},
    tools::{self, step},
};

mod cold_start;
mod download;
mod failover;
mod fixtures;
mod gateway;
mod images;
mod inference;
mod machine;
mod oha;
mod profile;
mod prom;
mod report;
mod stats;
mod users;

use oha::{Load, RunStats};
use report::{LoadResult, PartReport, Report};

/// The parts of the benchmark, in the order they run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Gateway,
    Users,
    Images,
    Download,
    Inference,
    ColdStart,
    Failover,
    /// Not part of the default set: profiles the slowest path (a few minutes under valgrind).
    Profile,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Gateway => "gateway",
            Part::Users => "users",
            Part::Images => "images",
            Part::Download => "download",
            Part::Inference => "inference",
            Part::ColdStart => "cold-start",
            Part::Failover => "failover",
            Part::Profile => "profile",
        }
    }

    const DEFAULT: [Part; 7] = [
        Part::Gateway,
        Part::Users,
        Part::Images,
        Part::Download,
        Part::Inference,
        Part::ColdStart,
        Part::Failover,
    ];
}

/// Run the benchmarks and write target/bench/report.md.
#[derive(clap::Parser, Debug)]
#[command(name = "cargo xtask bench", bin_name = "cargo xtask bench")]
pub struct BenchArgs {
    /// Parts to run (default: all but `profile`).
    #[arg(value_enum)]
    pub parts: Vec<Part>,
    /// Repeated runs per scenario; the report gives their median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub runs: u32,
    /// Use the release binaries already built instead of running `cargo build --release --bins`.
    #[arg(long)]
    pub no_build: bool,
    /// Measure the debug binaries (target/debug) instead: a quick check that every part works,
    /// never figures to publish (the report says so).
    #[arg(long)]
    pub debug: bool,
    /// Profile with callgrind even where perf works (exact, but very slow with the real model).
    #[arg(long)]
    pub callgrind: bool,
}

/// The password of the benchmark accounts (long enough for any policy).
const PASSWORD: &str = "bench-password-correct-horse-battery";

/// What every part shares: the load generator, the binaries, a scratch directory.
pub(crate) struct Bench {
    oha: PathBuf,
    runs: u32,
    bin_dir: PathBuf,
    model_dir: PathBuf,
    scratch: tempfile::TempDir,
    cores: usize,
}

/// A running stack with a logged-in benchmark user.
pub(crate) struct Live {
    stack: Stack,
    http: fixtures::Http,
    token: String,
    /// Kept until the stack is gone: the stack's files live here.
    _data: tempfile::TempDir,
}

impl Live {
    fn ports(&self) -> &Ports {
        self.stack.ports()
    }

    fn web(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports().web)
    }

    fn metrics(&self, port: u16) -> Result<prom::Scrape> {
        prom::scrape(&format!("http://127.0.0.1:{port}/metrics"))
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

impl Bench {
    /// Runs `load` once to warm up (discarded), then `self.runs` times; prints a line per run.
    fn measure(&self, scenario: &str, load: &Load) -> Result<LoadResult> {
        let warmup = Load {
            limit: oha::Limit::Requests(u64::from(load.concurrency).max(4)),
            ..load.clone()
        };
        warmup
            .run(&self.oha)
            .with_context(|| format!("warming up: {scenario}"))?;
        let mut runs = Vec::new();
        for i in 1..=self.runs {
            let stats = load
                .run(&self.oha)
                .with_context(|| format!("{scenario}, run {i}"))?;
            progress(scenario, i, self.runs, &stats);
            runs.push(stats);
        }
        Ok(LoadResult {
            scenario: scenario.to_owned(),
            concurrency: load.concurrency,
            median: oha::median_stats(&runs),
            runs,
        })
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Starts the whole native stack on free ports with `overrides` per process and logs in a
    /// benchmark user through the gateway.
    /// Without `with_inference` the stack runs every process but inference_service, so parts that
    /// do not need the model neither wait for it to load nor need it converted.
    fn start_stack(
        &self,
        overrides: BTreeMap<String, BTreeMap<String, String>>,
        with_inference: bool,
    ) -> Result<Live> {
        self.launch(overrides, with_inference, &self.model_dir)
    }

    /// The whole stack, its inference_service serving the model in `model_dir`.
    fn start_stack_serving(
        &self,
        overrides: BTreeMap<String, BTreeMap<String, String>>,
        model_dir: &Path,
    ) -> Result<Live> {
        self.launch(overrides, true, model_dir)
    }

    fn launch(
        &self,
        overrides: BTreeMap<String, BTreeMap<String, String>>,
        with_inference: bool,
        model_dir: &Path,
    ) -> Result<Live> {
        let data = tempfile::Builder::new()
            .prefix("forgettable-bench-")
            .tempdir()?;
        let opts = StackOptions {
            data_dir: data.path().to_path_buf(),
            bin_dir: self.bin_dir.clone(),
            model_dir: model_dir.to_path_buf(),
            ports: Ports::free()?,
            env_overrides: overrides,
            with_prometheus: false,
        };
        let started = Instant::now();
        let stack = if with_inference {
            Stack::start(opts)?
        } else {
            let names: Vec<String> = native_processes(&opts)?
                .into_iter()
                .map(|p| p.name)
                .filter(|name| name != "inference")
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            Stack::start_only(opts, &names)?
        };
        step(format!(
            "native stack ready in {:.1} s (data in {})",
            started.elapsed().as_secs_f64(),
            data.path().display()
        ));
        let http = fixtures::Http::new(stack.ports().web);
        let token = http.account("bench", PASSWORD)?;
        Ok(Live {
            stack,
            http,
            token,
            _data: data,
        })
    }
}

/// Overrides every benchmark stack gets: login, registration and hash-queue limits (the
/// services' and the gateway's) far above the load sent (the limiters protect against guessing
/// and floods, the benchmark measures hashing), tokens that outlive the run, and no prediction
/// cache.
fn base_overrides() -> BTreeMap<String, BTreeMap<String, String>> {
    let users: BTreeMap<String, String> = [
        ("LOGIN_RATE_PER_MINUTE_IP", "1000000"),
        ("LOGIN_RATE_PER_MINUTE_USER", "1000000"),
        ("REGISTER_RATE_PER_MINUTE_IP", "1000000"),
        ("ARGON2_MAX_QUEUE", "1000000"),
        ("ACCESS_TOKEN_TTL_SECS", "3600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut overrides: BTreeMap<String, BTreeMap<String, String>> = USERS_NAMES
        .iter()
        .map(|name| ((*name).to_owned(), users.clone()))
        .collect();
    // The gateway's per-address login and registration limits too (all the load comes from
    // one address).
    overrides.insert(
        "traefik".into(),
        BTreeMap::from([
            ("GATEWAY_LOGIN_RATE_PER_MINUTE_IP".into(), "1000000".into()),
            (
                "GATEWAY_REGISTER_RATE_PER_MINUTE_IP".into(),
                "1000000".into(),
            ),
        ]),
    );
    // A repeated photo must run the model, not hit the prediction cache.
    overrides.insert(
        "inference".into(),
        BTreeMap::from([("INFERENCE_CACHE_ENTRIES".into(), "0".into())]),
    );
    overrides
}

fn progress(scenario: &str, run: u32, runs: u32, s: &RunStats) {
    let mb = s
        .upload_mb_per_sec
        .map(|m| format!(", {m:.1} MB/s"))
        .unwrap_or_default();
    eprintln!(
        "    {scenario} [{run}/{runs}]: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {}/{} 2xx{mb}",
        s.requests_per_sec,
        s.p50_ms,
        s.p99_ms,
        s.ok,
        s.answered + s.errors
    );
}

fn git_commit() -> String {
    tools::output(Command::new("git").current_dir(tools::root()).args([
        "rev-parse",
        "--short",
        "HEAD",
    ]))
    .map(|s| s.trim().to_owned())
    .unwrap_or_else(|_| "unknown".into())
}

fn now() -> String {
    tools::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn new_part(part: Part, title: &str) -> PartReport {
    PartReport {
        title: title.to_owned(),
        order: part as u8,
        measured_at: now(),
        commit: git_commit(),
        ..PartReport::default()
    }
}

/// The converted ResMem model, made by `cargo xtask model` when missing.
fn model_dir() -> Result<PathBuf> {
    let dir = tools::root().join(xtask::model::DEFAULT_DIR);
    xtask::model::ensure_model(&dir)?;
    Ok(dir)
}

fn main() -> ExitCode {
    let args = <BenchArgs as clap::Parser>::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The parts asked for, in run order, each once.
fn selected_parts(args: &BenchArgs) -> Vec<Part> {
    let mut parts = if args.parts.is_empty() {
        Part::DEFAULT.to_vec()
    } else {
        args.parts.clone()
    };
    parts.sort();
    parts.dedup();
    parts
}

/// `debug` or `release`: the profile of the binaries measured.
fn profile_name(args: &BenchArgs) -> &'static str {
    if args.debug {
        "debug"
    } else {
        "release"
    }
}

/// Installs the tools, builds the binaries unless told not to, and gathers what every part
/// shares.
fn prepare(args: &BenchArgs, parts: &[Part], cores: usize) -> Result<Bench> {
    let root = tools::root();
    let needs_model = parts
        .iter()
        .any(|p| matches!(p, Part::Inference | Part::ColdStart | Part::Profile));
    let oha = oha::ensure()?;
    xtask::stack::ensure_tools()?;
    let profile = profile_name(args);
    if !args.no_build {
        step(format!("building the {profile} binaries"));
        let mut build = xtask::cargo::command();
        build.current_dir(&root).args(["build", "--bins"]);
        if !args.debug {
            build.arg("--release");
        }
        tools::run(&mut build)?;
    }
    Ok(Bench {
        oha,
        runs: args.runs,
        bin_dir: root.join("target").join(profile),
        model_dir: if needs_model {
            model_dir()?
        } else {
            root.join(xtask::model::DEFAULT_DIR)
        },
        scratch: tempfile::Builder::new()
            .prefix("forgettable-bench-files-")
            .tempdir()?,
        cores,
    })
}

/// The report on disk, to which each part's findings are saved as soon as it ends.
struct Output {
    dir: PathBuf,
    report: Report,
    build: &'static str,
}

impl Output {
    fn save(&mut self, part: Part, mut result: PartReport) -> Result<()> {
        result.build = self.build.to_owned();
        self.report.parts.insert(part.name().to_owned(), result);
        self.report.updated_at = now();
        self.report.save(&self.dir)
    }
}

/// The parts measured on one shared stack (all but inference, failover and profile).
fn run_on_main_stack(bench: &Bench, parts: &[Part], out: &mut Output) -> Result<()> {
    let on_main_stack: Vec<Part> = parts
        .iter()
        .copied()
        .filter(|p| *p < Part::Failover && *p != Part::Inference)
        .collect();
    if on_main_stack.is_empty() {
        return Ok(());
    }
    step("starting the native stack for the measurements");
    let needs_model = on_main_stack.iter().any(|p| matches!(p, Part::ColdStart))
        || parts.contains(&Part::Profile);
    let live = bench.start_stack(base_overrides(), needs_model)?;
    let mut me_at_32 = None;
    for part in on_main_stack {
        step(format!("part {}", part.name()));
        let result = match part {
            Part::Gateway => {
                let r = gateway::run(bench, &live)?;
                me_at_32 = r.load(gateway::ME_VIA_GATEWAY).cloned();
                r
            }
            Part::Users => users::run(bench, &live, me_at_32.clone())?,
            Part::Images => images::run(bench, &live)?,
            Part::Download => download::run(bench, &live)?,
            Part::ColdStart => cold_start::run(bench, &live)?,
            Part::Inference | Part::Failover | Part::Profile => unreachable!("filtered above"),
        };
        out.save(part, result)?;
    }
    step("stopping the native stack");
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    let parts = selected_parts(args);
    let machine = machine::Machine::describe();
    step(format!(
        "benchmarking {} on {} ({} cores), {} run(s) per scenario",
        parts
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
        machine.cpu_model,
        machine.cores,
        args.runs
    ));
    let bench = prepare(args, &parts, machine.cores)?;
    let dir = tools::root().join("target/bench");
    let mut report = Report::load(&dir);
    report.machine = machine;
    let mut out = Output {
        dir,
        report,
        build: profile_name(args),
    };

    run_on_main_stack(&bench, &parts, &mut out)?;
    if parts.contains(&Part::Inference) {
        step("part inference (a stack of its own per engine × precision)");
        out.save(Part::Inference, inference::run(&bench)?)?;
    }
    if parts.contains(&Part::Failover) {
        step("part failover (its own stack: replicas with a small MAX_IN_FLIGHT)");
        out.save(Part::Failover, failover::run(&bench)?)?;
    }
    if parts.contains(&Part::Profile) {
        step("part profile");
        out.save(Part::Profile, profile::run(&bench, args.callgrind)?)?;
    }
    step(format!(
        "done in {:.0} s: {} and {}",
        started.elapsed().as_secs_f64(),
        out.dir.join("report.md").display(),
        out.dir.join("report.json").display()
    ));
    Ok(())
}

/// The pid of the process listening on `port` (the launcher does not expose pids).
fn pid_of(port: u16) -> Result<u32> {
    machine::pid_listening_on(port)
}

/// Bytes of a file.
fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}
