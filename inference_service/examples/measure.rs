//! Measures the model as the service runs it: load time, forward-pass latency with one and two
//! threads, throughput of `2 workers × 1 thread` against `1 worker × 2 threads`, and memory.
//!
//! ```text
//! cargo run -p inference_service --example measure -- [MODEL_DIR] [RUNS]
//! ```
//! (dependencies, tract included, build at opt-level 2 even in dev.)

use std::{path::PathBuf, time::Instant};

use inference_service::model::{LoadedModel, Manifest};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn input(model: &LoadedModel, seed: usize) -> Vec<f32> {
    (0..model.input_len())
        .map(|i| ((i * 31 + seed * 7) % 256) as f32 / 255.0)
        .collect()
}

fn latency(model: &LoadedModel, executor: Executor, runs: usize) -> (f64, f64) {
    let mut times: Vec<f64> = (0..runs)
        .map(|i| {
            let data = input(model, i);
            let started = Instant::now();
            multithread_tract_scope(executor.clone(), || model.forward(data)).expect("forward");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn throughput(model: &LoadedModel, workers: usize, threads: usize, images: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            scope.spawn(move || {
                let executor = if threads > 1 {
                    Executor::multithread(threads)
                } else {
                    Executor::SingleThread
                };
                for i in (worker..images).step_by(workers) {
                    multithread_tract_scope(executor.clone(), || model.forward(input(model, i)))
                        .expect("forward");
                }
            });
        }
    });
    images as f64 / started.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "data/models/resmem".to_owned()),
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let rss_before = rss_kib("VmRSS:");
    let manifest = Manifest::load(&dir)?;
    let model = LoadedModel::load(&dir, manifest)?;
    println!(
        "model {} {}: load, verify and optimise {:.2} s; RSS {} MiB before, {} MiB after load",
        model.manifest.name,
        model.manifest.version,
        model.load_seconds,
        rss_before / 1024,
        rss_kib("VmRSS:") / 1024
    );
    multithread_tract_scope(Executor::SingleThread, || model.forward(input(&model, 0)))?;
    for threads in [1, 2] {
        let executor = if threads > 1 {
            Executor::multithread(threads)
        } else {
            Executor::SingleThread
        };
        let (p50, p99) = latency(&model, executor, runs);
        println!("batch-1 latency, {threads} thread(s): p50 {p50:.1} ms, p99 {p99:.1} ms over {runs} runs");
    }
    let images = runs.max(8) & !1;
    println!(
        "throughput over {images} images: 2 workers x 1 thread {:.2} images/s; 1 worker x 2 threads {:.2} images/s",
        throughput(&model, 2, 1, images),
        throughput(&model, 1, 2, images)
    );
    println!("peak RSS {} MiB", rss_kib("VmHWM:") / 1024);
    Ok(())
}
