//! `cargo xtask …`: the project's one entry point for running, testing, benchmarking.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Run, test and measure Forgettable Images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what is missing, build in release mode and run the whole suite natively.
    Up(xtask::stack::UpArgs),
    /// Run the suite on this machine's Docker engine with Compose, every image built locally.
    Docker(xtask::docker::DockerArgs),
    /// Run the suite as a Docker Swarm stack on this engine (a single-node swarm if none).
    Swarm(xtask::swarm::SwarmArgs),
    /// Run every test: unit, integration (SQLite and PostgreSQL), end-to-end, config checks.
    Test(xtask::test::TestArgs),
    /// Convert the ResMem model to ONNX under ./data/models/resmem (non-commercial licence).
    Model(xtask::model::ModelArgs),
    /// Run each fuzz target for a bounded time from its seed corpus; fail on any crash.
    Fuzz(xtask::fuzz::FuzzArgs),
    /// Run the benchmarks and write target/bench/report.md (the `benches` crate, in release).
    #[command(disable_help_flag = true)]
    Bench(xtask::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => xtask::stack::up(args),
        Command::Docker(args) => xtask::docker::run(args),
        Command::Swarm(args) => xtask::swarm::run(args),
        Command::Test(args) => xtask::test::run(args),
        Command::Model(args) => xtask::model::run(args),
        Command::Bench(args) => xtask::bench::run(args),
        Command::Fuzz(args) => xtask::fuzz::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
