//! Cold start: time from spawning a service's process to its first `/readyz` 200, for each
//! service. A second instance of each is started beside the running stack (same data, same
//! configuration as the launcher gives it, its own free port), so the database already exists and
//! the figure is the process's own start: runtime, configuration, connection pool, key or model
//! load.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{report::PartReport, stats, Bench, Live, Part};
use xtask::{stack::ProcessSpec, tools};

/// The services measured, by launcher process name.
const SERVICES: [&str; 3] = ["users-1", "images", "inference"];
/// Readiness is polled this often; the figure is accurate to about this much.
const POLL: Duration = Duration::from_millis(5);
const TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(bench: &Bench, live: &Live) -> Result<PartReport> {
    let mut part = super::new_part(Part::ColdStart, "Cold start: process start to /readyz 200");
    for name in SERVICES {
        let spec = live
            .stack
            .processes()
            .find(|p| p.name == name)
            .cloned()
            .with_context(|| format!("the stack has no {name}"))?;
        let mut times = Vec::new();
        for run in 1..=bench.runs {
            let seconds = cold_start(&spec, live)?;
            eprintln!(
                "    {name} [{run}/{}]: ready after {:.0} ms",
                bench.runs,
                seconds * 1000.0
            );
            times.push(seconds * 1000.0);
        }
        let binary = spec
            .program
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        part.figure(
            &format!("{binary} start → ready"),
            stats::median(times.iter().copied()),
            "ms",
            &format!(
                "median of {} starts (min {:.0}, max {:.0})",
                times.len(),
                min(&times),
                max(&times)
            ),
        );
    }
    part.note(format!(
        "Each start is a new release-build process with the launcher's environment on a free port; /readyz polled every {} ms.",
        POLL.as_millis()
    ));
    part.note("inference_service is ready once the ONNX model is loaded and optimised by tract, so its figure is dominated by the model load.");
    Ok(part)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Kills the child on every way out.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cold_start(spec: &ProcessSpec, live: &Live) -> Result<f64> {
    let port = tools::free_port()?;
    let log = std::fs::File::create(
        live.stack
            .data_dir()
            .join("logs")
            .join(format!("cold-start-{}.log", spec.name)),
    )?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let started = Instant::now();
    let mut child = Guard(
        Command::new(&spec.program)
            .args(&spec.args)
            .envs(&spec.env)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("INSTANCE_NAME", format!("{}-cold-start", spec.name))
            .current_dir(live.stack.data_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.program.display()))?,
    );
    loop {
        if let Ok(response) = agent.get(&url).call() {
            if response.status() == 200 {
                return Ok(started.elapsed().as_secs_f64());
            }
        }
        if let Some(status) = child.0.try_wait()? {
            bail!("{} exited with {status} before it was ready", spec.name);
        }
        if started.elapsed() > TIMEOUT {
            bail!("{} was not ready within {TIMEOUT:?}", spec.name);
        }
        std::thread::sleep(POLL);
    }
}
