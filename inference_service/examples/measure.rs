//! Measures the model as the service runs it, on each engine: load time, single forward-pass
//! latency with one and two threads, throughput of `2 workers × 1 thread` against
//! `1 worker × 2 threads`, and memory. In-process timings, no HTTP.
//!
//! ```text
//! cargo run --release -p inference_service --example measure -- [MODEL_DIR] [RUNS] [ENGINES]
//! ```
//! ENGINES is `tract`, `onnxruntime` or `tract,onnxruntime` (the default). ONNX Runtime's library
//! is `ORT_DYLIB_PATH`, else the one `cargo xtask model` installs into `./.venv`.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use inference_service::{
    config::find_onnxruntime,
    model::{EngineKind, LoadedModel, Manifest, Parallelism, Runtime},
};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat` at 100 ticks a second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used by this process's threads other than the calling one: the engines' own
/// threads (a tract pool, ONNX Runtime's intra-op threads), which run only inside a forward pass.
fn helper_thread_cpu_seconds() -> f64 {
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| t.file_name().to_string_lossy() != me)
        .map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (ticks(11) + ticks(12)) / 100.0
        })
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn input(model: &LoadedModel, seed: usize) -> Vec<f32> {
    (0..model.input_len())
        .map(|i| ((i * 31 + seed * 7) % 256) as f32 / 255.0)
        .collect()
}

fn load(
    dir: &Path,
    runtime: &Runtime,
    lanes: usize,
    threads: usize,
) -> anyhow::Result<LoadedModel> {
    let manifest = Manifest::load(dir)?;
    LoadedModel::load(dir, manifest, runtime, Parallelism { lanes, threads })
}

/// p50 and p99 of `runs` single forward passes, in milliseconds, after one warm-up pass, and the
/// CPU time they used over their wall time (how many cores one pass kept busy) and the share of
/// that CPU time spent in the engine's own threads.
fn latency(model: &LoadedModel, runs: usize) -> anyhow::Result<(f64, f64, f64, f64)> {
    model.forward(input(model, 0))?;
    let mut times = Vec::with_capacity(runs);
    let (cpu_before, helpers_before, wall) =
        (cpu_seconds(), helper_thread_cpu_seconds(), Instant::now());
    for i in 0..runs {
        let data = input(model, i);
        let started = Instant::now();
        model.forward(data)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = cpu_seconds() - cpu_before;
    let cores = cpu / wall.elapsed().as_secs_f64();
    let helpers = helper_thread_cpu_seconds() - helpers_before;
    times.sort_by(f64::total_cmp);
    Ok((
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        cores,
        helpers / cpu.max(f64::EPSILON),
    ))
}

/// Images per second with `workers` threads each running forward passes on `model`.
fn throughput(model: &LoadedModel, workers: usize, images: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            scope.spawn(move || {
                for i in (worker..images).step_by(workers) {
                    model.forward(input(model, i)).expect("forward");
                }
            });
        }
    });
    images as f64 / started.elapsed().as_secs_f64()
}

fn runtime(kind: EngineKind) -> anyhow::Result<Runtime> {
    let library: Option<PathBuf> = match kind {
        EngineKind::Tract => None,
        EngineKind::OnnxRuntime => std::env::var_os("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| find_onnxruntime(Path::new(".venv"))),
    };
    Runtime::start(kind, library.as_deref())
}

fn measure(dir: &Path, kind: EngineKind, runs: usize) -> anyhow::Result<()> {
    let runtime = runtime(kind)?;
    let rss_before = rss_kib("VmRSS:");
    for threads in [1, 2] {
        let model = load(dir, &runtime, 1, threads)?;
        let rss = rss_kib("VmRSS:");
        let (p50, p99, cores, helpers) = latency(&model, runs)?;
        println!(
            "{kind}: {threads} thread(s): load {:.2} s (RSS +{} MiB); single forward p50 {p50:.1} ms, p99 {p99:.1} ms over {runs} runs, {cores:.2} cores busy, {:.0} % of the CPU in the engine's threads",
            model.load_seconds,
            rss.saturating_sub(rss_before) / 1024,
            helpers * 100.0
        );
    }
    let images = runs.max(8) & !1;
    let two_workers = load(dir, &runtime, 2, 1)?;
    let per_second_2x1 = throughput(&two_workers, 2, images);
    drop(two_workers);
    let one_worker = load(dir, &runtime, 1, 2)?;
    let per_second_1x2 = throughput(&one_worker, 1, images);
    println!(
        "{kind}: throughput over {images} images: 2 workers x 1 thread {per_second_2x1:.2} images/s; 1 worker x 2 threads {per_second_1x2:.2} images/s"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "data/models/resmem".to_owned()),
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let engines: Vec<EngineKind> = args
        .next()
        .unwrap_or_else(|| "tract,onnxruntime".to_owned())
        .split(',')
        .map(|e| e.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()
        .context("ENGINES")?;
    let manifest = Manifest::load(&dir)?;
    println!(
        "model {} {} ({}), {} cores",
        manifest.name,
        manifest.version,
        manifest.precision.as_str(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for kind in engines {
        measure(&dir, kind, runs)?;
    }
    println!("peak RSS {} MiB", rss_kib("VmHWM:") / 1024);
    Ok(())
}
