//! Where the time of the slowest request goes: `POST /predict` (decode, resize, model forward).
//!
//! With `perf` able to count instructions (`perf stat -e instructions true`), the running
//! inference_service is sampled with `perf record` during a short load; without hardware counters
//! (most virtual machines) perf samples on the software `cpu-clock` event instead. `--callgrind`
//! runs a second inference_service under `valgrind --tool=callgrind` with collection switched on
//! only after the model is loaded, for a few requests: exact instruction counts per function, but
//! loading ResMem alone takes well over 15 minutes there.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{
    fixtures,
    oha::{Limit, Load},
    report::PartReport,
    Bench, Live, Part,
};
use xtask::tools::{self, step};

/// Requests profiled under callgrind (each costs tens of seconds there).
const CALLGRIND_REQUESTS: u32 = 3;
/// Functions listed in the report.
const TOP: usize = 15;

/// Which profiler this machine supports.
fn perf_counts_instructions() -> bool {
    let Ok(out) = Command::new("perf")
        .args(["stat", "-e", "instructions", "true"])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stderr);
    out.status.success() && !text.contains("not supported") && !text.contains("<not counted>")
}

pub fn run(bench: &Bench, force_callgrind: bool) -> Result<PartReport> {
    let mut part = super::new_part(Part::Profile, "Profile of the slowest path: POST /predict");
    let live = bench.start_stack(super::base_overrides(), true)?;
    let (tool, top) = if force_callgrind {
        step(
            "callgrind on a second inference_service (loading the model takes many minutes there)",
        );
        ("callgrind", callgrind(bench, &live)?)
    } else if perf_counts_instructions() {
        step("perf counts instructions here: sampling inference_service with perf record");
        ("perf record (cycles)", perf(bench, &live, None)?)
    } else {
        // No hardware counters (a virtual machine): sample on the kernel's CPU clock instead.
        // callgrind (`--callgrind`) is exact but needs well over 15 minutes to load ResMem.
        step("perf cannot count instructions here: sampling inference_service with perf record -e cpu-clock");
        (
            "perf record -e cpu-clock",
            perf(bench, &live, Some("cpu-clock"))?,
        )
    };
    for (function, share) in top.iter().take(TOP) {
        part.figure(
            function,
            *share,
            "%",
            if tool == "callgrind" {
                "of instructions, self"
            } else {
                "of samples, self"
            },
        );
    }
    part.note(format!(
        "Profiler: {tool}. Self cost per function while serving `POST /predict` (model already loaded), release build \
         with line tables."
    ));
    Ok(part)
}

fn predict_image(bench: &Bench) -> Result<std::path::PathBuf> {
    let path = bench.scratch("profile.png");
    fixtures::write_noise_png(&path, 384, 384, 77)?;
    Ok(path)
}

fn perf(bench: &Bench, live: &Live, event: Option<&str>) -> Result<Vec<(String, f64)>> {
    let pid = super::pid_of(live.ports().inference)?;
    let data = bench.scratch("perf.data");
    let image = predict_image(bench)?;
    let mut record = Command::new("perf");
    record.args(["record", "-F", "499", "-g"]);
    if let Some(event) = event {
        record.args(["-e", event]);
    }
    let mut recorder = record
        .arg("-o")
        .arg(&data)
        .args(["-p", &pid.to_string(), "--", "sleep", "15"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    let load = Load::post(
        live.web("/predict"),
        &image,
        "image/png",
        2,
        Limit::Seconds(12),
    )
    .header("Host", "inference.localhost")
    .header("Authorization", &live.bearer());
    load.run(&bench.oha)?;
    recorder.wait()?;
    let report = tools::output(
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
                "-i",
            ])
            .arg(&data),
    )?;
    Ok(parse_perf(&report))
}

fn parse_perf(report: &str) -> Vec<(String, f64)> {
    report
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (share, rest) = l.trim().split_once('%')?;
            // perf pads the symbol column and may add empty `-` columns after it.
            let symbol = rest
                .trim()
                .trim_end_matches([' ', '-'])
                .trim_start_matches("[.]")
                .trim_start_matches("[k]")
                .trim();
            Some((symbol.to_owned(), share.trim().parse().ok()?))
        })
        .collect()
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn callgrind(bench: &Bench, live: &Live) -> Result<Vec<(String, f64)>> {
    tools::ensure_apt(&[("valgrind", "valgrind"), ("callgrind_annotate", "valgrind")])?;
    let spec = live
        .stack
        .processes()
        .find(|p| p.name == "inference")
        .cloned()
        .context("the stack has no inference process")?;
    let port = tools::free_port()?;
    let out = bench.scratch("callgrind.out");
    let log = std::fs::File::create(bench.scratch("callgrind.log"))?;
    step("starting inference_service under callgrind (loading the model takes minutes there)");
    let started = Instant::now();
    let mut child = Guard(
        Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--collect-atstart=no",
                "--dump-instr=no",
            ])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&spec.program)
            .args(&spec.args)
            .envs(&spec.env)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("INSTANCE_NAME", "inference-profile")
            .env("RUST_LOG", "warn")
            .current_dir(live.stack.data_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting valgrind")?,
    );
    let pid = child.0.id();
    wait_ready(
        &mut child.0,
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(900),
    )?;
    eprintln!(
        "    ready under callgrind after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    tools::run(
        Command::new("callgrind_control")
            .args(["-i", "on", &pid.to_string()])
            .stdout(Stdio::null()),
    )?;
    for i in 1..=CALLGRIND_REQUESTS {
        // A different image each time: the service may cache predictions by image.
        let path = bench.scratch(&format!("profile-{i}.png"));
        fixtures::write_noise_png(&path, 384, 384, 500 + u64::from(i))?;
        let bytes = std::fs::read(&path)?;
        let t = Instant::now();
        let (status, body) = live.http.post_bytes(
            &format!("http://127.0.0.1:{port}/predict"),
            &bytes,
            "image/png",
            &live.token,
        )?;
        if status != 200 {
            bail!("POST /predict under callgrind answered {status}: {body}");
        }
        eprintln!(
            "    request {i}/{CALLGRIND_REQUESTS} under callgrind: {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    // SIGTERM: the service shuts down gracefully and callgrind writes its profile at exit.
    tools::run(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("inference_service under callgrind did not exit within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    annotate(&out)
}

fn wait_ready(child: &mut Child, url: &str, timeout: Duration) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let deadline = Instant::now() + timeout;
    loop {
        if matches!(agent.get(url).call(), Ok(r) if r.status() == 200) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("inference_service under callgrind exited with {status}");
        }
        if Instant::now() > deadline {
            bail!("inference_service under callgrind was not ready within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Self cost per function, highest first, from `callgrind_annotate`.
fn annotate(out: &Path) -> Result<Vec<(String, f64)>> {
    let text = tools::output(
        Command::new("callgrind_annotate")
            .args(["--inclusive=no", "--threshold=99"])
            .arg(out),
    )?;
    let top = parse_annotate(&text);
    if top.is_empty() {
        bail!("callgrind_annotate listed no function:\n{text}");
    }
    Ok(top)
}

/// Lines like `1,234,567 (12.34%)  src/x.rs:crate::f [/path/bin]`.
fn parse_annotate(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let open = line.find('(')?;
            let close = line.find("%)")?;
            line[..open].trim().replace(',', "").parse::<u64>().ok()?;
            let share: f64 = line[open + 1..close].trim().parse().ok()?;
            let rest = line[close + 2..].trim();
            if rest.starts_with("PROGRAM TOTALS") || rest.is_empty() {
                return None;
            }
            let function = rest.split_once(':').map_or(rest, |(_, f)| f);
            let function = function
                .rsplit_once(" [")
                .map_or(function, |(f, _)| f)
                .trim();
            Some((function.to_owned(), share))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_annotate_lines_become_functions_with_shares() {
        let text = "--------\nIr\n--------\n2,000,000 (100.0%)  PROGRAM TOTALS\n\
                    1,200,000 (60.00%)  ???:tract_linalg::frame::mmm::kernel [/bin/inference_service]\n\
                    400,000 (20.00%)  src/decode.rs:image::codecs::png::decode [/bin/inference_service]\n";
        let top = parse_annotate(text);
        assert_eq!(
            top,
            vec![
                ("tract_linalg::frame::mmm::kernel".to_owned(), 60.0),
                ("image::codecs::png::decode".to_owned(), 20.0)
            ]
        );
    }

    #[test]
    fn perf_report_lines_become_symbols_with_shares() {
        let text = "# Overhead  Symbol\n    42.10%  [.] tract_linalg::mmm      -      -  \n     3.50%  [k] clear_page_erms\n";
        assert_eq!(
            parse_perf(text),
            vec![
                ("tract_linalg::mmm".to_owned(), 42.1),
                ("clear_page_erms".to_owned(), 3.5)
            ]
        );
    }
}
