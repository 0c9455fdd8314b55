//! Inference: images/s and latency of `POST /predict` through the gateway at concurrency 1, 2
//! and 8; the model's forward time in tract (the service's own `inference_seconds` histogram)
//! against ONNX Runtime (PyPI `onnxruntime`) on the same ONNX file with the same thread count;
//! model load time and resident memory of inference_service.

use std::{collections::BTreeMap, process::Command};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::{
    fixtures, machine,
    oha::{self, Limit, Load, RunStats},
    prom::{histogram_delta, Histogram},
    report::{LoadResult, PartReport},
    stats, Bench, Live, Part,
};
use xtask::tools;

/// The photo sent (public domain, from the inference tests' fixtures): a real JPEG, larger than
/// the model input, so decoding and resizing are part of every request.
const PHOTO: &str = "inference_service/tests/fixtures/photos/rocket.jpg";
const PHOTO_TYPE: &str = "image/jpeg";
/// The side of the noise images used when every request needs an image of its own.
const IMAGE_SIDE: u32 = 384;
/// Forward passes ONNX Runtime times after one warm-up.
const ORT_RUNS: u32 = 20;
/// Threads per model run: the service default (`INFERENCE_THREADS`), used for both runtimes.
const THREADS: u32 = 1;

fn scenario(concurrency: u32) -> String {
    format!("POST /predict via Traefik, c={concurrency}")
}

/// Requests per run at each concurrency: enough for a median and a rough p99 within the budget.
fn requests_for(concurrency: u32) -> u64 {
    match concurrency {
        1 => 12,
        2 => 16,
        _ => 32,
    }
}

/// What the service told about itself before the runs.
struct Before {
    pid: u32,
    steady: machine::Memory,
    load_seconds: f64,
}

pub fn run(bench: &Bench, live: &Live) -> Result<PartReport> {
    let mut part = super::new_part(Part::Inference, "Inference: POST /predict and the model");
    let port = live.ports().inference;
    let pid = super::pid_of(port)?;
    let before = Before {
        pid,
        steady: machine::memory(pid)?,
        load_seconds: live.metrics(port)?.sum("inference_model_load_seconds", &[]),
    };
    let photo_bytes =
        std::fs::read(tools::root().join(PHOTO)).with_context(|| format!("reading {PHOTO}"))?;
    let distinct = repeats_hit_the_cache(live, &photo_bytes)?;
    let (loads, forward) = measure_loads(bench, live, distinct)?;
    let after = machine::memory(before.pid)?;
    let ort = onnx_runtime(bench)?;

    let tract_mean = forward.mean() * 1000.0;
    let ort_mean = stats::median(ort.forward_ms.iter().copied());
    model_figures(&mut part, &forward, &ort, before.load_seconds);
    memory_figures(&mut part, &before.steady, &after);
    for load in &loads {
        part.figure(
            &format!("images/s at c={}", load.concurrency),
            load.median.ok_per_sec,
            "1/s",
            "2xx/s, median of runs",
        );
    }
    comparisons(&mut part, bench, &loads, tract_mean, ort_mean);
    part.loads = loads;
    notes(&mut part, distinct, photo_bytes.len());
    Ok(part)
}

/// Sends the photo twice and says whether the second answer came from the prediction cache.
/// The benchmark turns the cache off (INFERENCE_CACHE_ENTRIES=0) so a repeated photo runs the
/// model every time; should a repeat still be a cache hit, every request gets an image of its
/// own instead.
fn repeats_hit_the_cache(live: &Live, photo_bytes: &[u8]) -> Result<bool> {
    let port = live.ports().inference;
    let first = live.metrics(port)?;
    for _ in 0..2 {
        let (status, body) = live.http.post_bytes(
            &live.http.url("inference", "/predict"),
            photo_bytes,
            PHOTO_TYPE,
            &live.token,
        )?;
        if status != 200 {
            bail!("POST /predict answered {status}: {body}");
        }
    }
    let cache_hits = live.metrics(port)?.sum("inference_cache_hits_total", &[])
        - first.sum("inference_cache_hits_total", &[]);
    let distinct = cache_hits > 0.0;
    super::step(format!(
        "POST /predict: {} (a repeated image was {}answered from the cache)",
        if distinct {
            "a distinct image per request, one `oha -n 1` each"
        } else {
            "one photo, oha -c N"
        },
        if distinct { "" } else { "not " }
    ));
    Ok(distinct)
}

/// The load at concurrency 1, 2 and 8, and the forward-time histogram of the c=1 runs.
fn measure_loads(
    bench: &Bench,
    live: &Live,
    distinct: bool,
) -> Result<(Vec<LoadResult>, Histogram)> {
    let port = live.ports().inference;
    let mut seed = 10_000;
    let mut loads = Vec::new();
    let mut forward = None;
    for concurrency in [1u32, 2, 8] {
        let before = live.metrics(port)?;
        let result = if distinct {
            distinct_load(bench, live, concurrency, &mut seed)?
        } else {
            photo_load(bench, live, concurrency)?
        };
        if concurrency == 1 {
            forward = Some(histogram_delta(
                &before,
                &live.metrics(port)?,
                "inference_seconds",
                &[],
            ));
        }
        loads.push(result);
    }
    Ok((loads, forward.context("no concurrency-1 runs")?))
}

/// `bench.runs` runs of one noise image per request, `concurrency` at a time.
fn distinct_load(
    bench: &Bench,
    live: &Live,
    concurrency: u32,
    seed: &mut u64,
) -> Result<LoadResult> {
    let name = scenario(concurrency);
    let mut runs = Vec::new();
    for run in 1..=bench.runs {
        let mut images = Vec::new();
        for _ in 0..requests_for(concurrency) {
            *seed += 1;
            let path = bench.scratch(&format!("predict-{seed}.png"));
            fixtures::write_noise_png(&path, IMAGE_SIDE, IMAGE_SIDE, *seed)?;
            images.push(path);
        }
        let stats = distinct_requests(bench, live, &images, concurrency)?;
        super::progress(&name, run, bench.runs, &stats);
        runs.push(stats);
    }
    Ok(LoadResult {
        scenario: name,
        concurrency,
        median: oha::median_stats(&runs),
        runs,
    })
}

/// The same photo in every request, `oha -c concurrency`.
fn photo_load(bench: &Bench, live: &Live, concurrency: u32) -> Result<LoadResult> {
    bench.measure(
        &scenario(concurrency),
        &Load::post(
            live.web("/predict"),
            &tools::root().join(PHOTO),
            PHOTO_TYPE,
            concurrency,
            Limit::Requests(requests_for(concurrency)),
        )
        .header("Host", "inference.localhost")
        .header("Authorization", &live.bearer()),
    )
}

/// Forward and load times of tract in the service and of ONNX Runtime.
fn model_figures(part: &mut PartReport, forward: &Histogram, ort: &OrtResult, load_seconds: f64) {
    part.figure(
        "tract forward, batch 1, mean",
        forward.mean() * 1000.0,
        "ms",
        &format!("`inference_seconds` over {} requests at c=1", forward.count),
    );
    part.figure(
        "tract forward, batch 1, p50",
        forward.quantile(0.5) * 1000.0,
        "ms",
        "bucket-interpolated from `inference_seconds`",
    );
    part.figure(
        "tract forward, batch 1, p99",
        forward.quantile(0.99) * 1000.0,
        "ms",
        "bucket-interpolated from `inference_seconds`",
    );
    part.figure(
        "ONNX Runtime forward, batch 1, median",
        stats::median(ort.forward_ms.iter().copied()),
        "ms",
        &format!(
            "onnxruntime {} CPU, {THREADS} thread(s), {ORT_RUNS} runs after a warm-up",
            ort.version
        ),
    );
    part.figure(
        "ONNX Runtime session load",
        ort.load_seconds * 1000.0,
        "ms",
        "InferenceSession()",
    );
    part.figure(
        "model load in the service",
        load_seconds * 1000.0,
        "ms",
        "`inference_model_load_seconds`",
    );
}

/// Resident memory of inference_service before and after the runs.
fn memory_figures(part: &mut PartReport, steady: &machine::Memory, after: &machine::Memory) {
    part.figure(
        "inference_service RSS, model loaded, idle",
        steady.rss_mib,
        "MiB",
        "VmRSS before the runs",
    );
    part.figure(
        "inference_service RSS after the runs",
        after.rss_mib,
        "MiB",
        "VmRSS",
    );
    part.figure(
        "inference_service peak RSS",
        after.peak_mib,
        "MiB",
        "VmHWM since start (includes loading)",
    );
}

fn comparisons(
    part: &mut PartReport,
    bench: &Bench,
    loads: &[LoadResult],
    tract_mean: f64,
    ort_mean: f64,
) {
    part.compare(
        "tract forward (service) mean",
        tract_mean,
        "ONNX Runtime forward median",
        ort_mean,
        "ms",
        "above 1: tract is slower than ONNX Runtime on the same file and threads",
    );
    part.compare(
        "`POST /predict` p50 at c=1",
        loads[0].median.p50_ms,
        "tract forward mean",
        tract_mean,
        "ms",
        "request latency in forward passes (decode, resize, auth, gateway on top)",
    );
    if let (Some(c8), Some(c1)) = (loads.iter().find(|l| l.concurrency == 8), loads.first()) {
        part.compare(
            "images/s at c=8",
            c8.median.ok_per_sec,
            "images/s at c=1",
            c1.median.ok_per_sec,
            "1/s",
            &format!(
                "scaling with concurrency ({} workers by default, {} cores)",
                2, bench.cores
            ),
        );
    }
}

fn notes(part: &mut PartReport, distinct: bool, photo_len: usize) {
    if distinct {
        part.note(format!(
            "The service answered a repeated image from its cache, so each request sent its own \
             {IMAGE_SIDE}×{IMAGE_SIDE} noise PNG with its own `oha -n 1`."
        ));
    } else {
        part.note(format!(
            "Every request sends `{PHOTO}` ({} KiB JPEG); the prediction cache is off for the \
             benchmark (`INFERENCE_CACHE_ENTRIES=0`), so each request decodes, resizes and runs the model.",
            photo_len / 1024
        ));
    }
    part.note(format!(
        "Forward times are for the model alone: tract inside the service (`inference_seconds` times \
         only the forward pass), ONNX Runtime in Python on a random input of the model's shape; both \
         with {THREADS} thread(s). The service runs `INFERENCE_WORKERS` = 2 forwards at once by default."
    ));
}

/// Sends each image once, `concurrency` at a time, each with its own `oha -n 1`.
fn distinct_requests(
    bench: &Bench,
    live: &Live,
    images: &[std::path::PathBuf],
    concurrency: u32,
) -> Result<RunStats> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let results: Vec<Result<Vec<RunStats>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(image) = images.get(i) else {
                            return Ok(mine);
                        };
                        let load = Load::post(
                            live.web("/predict"),
                            image,
                            "image/png",
                            1,
                            Limit::Requests(1),
                        )
                        .header("Host", "inference.localhost")
                        .header("Authorization", &live.bearer());
                        mine.push(load.run(&bench.oha)?);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
            })
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut singles = Vec::new();
    for r in results {
        singles.extend(r?);
    }
    let mut combined = oha::combine_singles(&singles, wall, 0);
    combined.upload_mb_per_sec = None;
    combined.sent_mb_per_sec = None;
    Ok(combined)
}

#[derive(Debug, Deserialize)]
struct OrtResult {
    version: String,
    load_seconds: f64,
    forward_ms: Vec<f64>,
}

/// Times the model's forward pass in ONNX Runtime (in the project virtualenv).
const ORT_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
import onnxruntime as ort

model, manifest, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = json.load(open(manifest))["input"]
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
started = time.perf_counter()
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
load_seconds = time.perf_counter() - started
spec = session.get_inputs()[0]
named = {"height": size["height"], "width": size["width"]}
shape = []
for axis, dim in enumerate(spec.shape):
    if isinstance(dim, int):
        shape.append(dim)
    else:
        shape.append(1 if axis == 0 else 3 if axis == 1 else size["height"] if axis == 2 else size["width"])
x = np.random.default_rng(0).random(shape, dtype=np.float32)
session.run(None, {spec.name: x})
times = []
for _ in range(runs):
    t = time.perf_counter()
    session.run(None, {spec.name: x})
    times.append((time.perf_counter() - t) * 1000.0)
print(json.dumps({"version": ort.__version__, "load_seconds": load_seconds, "forward_ms": times, "shape": shape}))
"#;

fn onnx_runtime(bench: &Bench) -> Result<OrtResult> {
    // The same pinned onnxruntime the model converter checks its output with.
    xtask::model::ensure_python()?;
    let script = bench.scratch("ort_forward.py");
    std::fs::write(&script, ORT_SCRIPT)?;
    super::step(format!(
        "ONNX Runtime: {ORT_RUNS} forward passes with {THREADS} thread(s)"
    ));
    let out = tools::output(
        Command::new(tools::venv_bin("python")?)
            .arg(&script)
            .arg(bench.model_dir.join("model.onnx"))
            .arg(bench.model_dir.join("manifest.json"))
            .arg(THREADS.to_string())
            .arg(ORT_RUNS.to_string())
            .envs(BTreeMap::from([("OMP_NUM_THREADS", THREADS.to_string())])),
    )?;
    let result: OrtResult = serde_json::from_str(out.trim())
        .with_context(|| format!("reading the ONNX Runtime result: {out}"))?;
    eprintln!(
        "    ONNX Runtime {}: median forward {:.1} ms",
        result.version,
        stats::median(result.forward_ms.iter().copied())
    );
    Ok(result)
}
