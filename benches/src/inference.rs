//! Inference: every engine × precision the service can run, each on a stack of its own, and ONNX
//! Runtime from Python (PyPI `onnxruntime`) on the same model files in the same run.
//!
//! Per configuration: images/s and latency of `POST /predict` through the gateway at concurrency
//! 1, 2 and 8, the forward time inside the service (`inference_seconds`, c=1), model load time and
//! resident memory. From Python: forward time at batch 1 and 8 with 1 and 2 threads, whose best
//! images/s is what this machine can get out of ONNX Runtime. The goals of the report:
//! tract's images/s at c=8 against its ceiling (cores ÷ one-thread forward time), ONNX Runtime's
//! against Python's best, and ONNX Runtime's forward time against Python's on one thread.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

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
/// Forward passes ONNX Runtime times per batch-1 setting after one warm-up (a quarter of them,
/// at least 3, for batch 8).
const ORT_RUNS: u32 = 20;
/// The service's defaults (`INFERENCE_WORKERS`, `INFERENCE_THREADS`), measured as shipped.
const WORKERS: u32 = 2;
const THREADS: u32 = 1;
/// The goals the report checks (issue figures, as ratios measured in this run).
const TRACT_OF_CEILING: f64 = 0.9;
const ORT_OF_PYTHON_BEST: f64 = 0.8;
const ORT_FORWARD_OF_PYTHON: f64 = 1.1;

/// Requests per run at each concurrency: enough for a median and a rough p99 within the budget.
fn requests_for(concurrency: u32) -> u64 {
    match concurrency {
        1 => 12,
        2 => 16,
        _ => 32,
    }
}

/// An engine and a model folder, measured together on a stack of their own.
struct Config {
    engine: &'static str,
    precision: &'static str,
    model_dir: PathBuf,
}

impl Config {
    fn name(&self) -> String {
        format!("{} {}", self.engine, self.precision)
    }
}

/// Every engine on the fp32 model, and on the int8 model when one is installed (`cargo xtask
/// model --int8` installs it only when it passes its accuracy gate).
fn configs(bench: &Bench, part: &mut PartReport) -> Vec<Config> {
    let mut configs = Vec::new();
    let int8 = tools::root().join(xtask::model::INT8_DIR);
    let mut models = vec![("fp32", bench.model_dir.clone())];
    if int8.join("manifest.json").is_file() {
        models.push(("int8", int8));
    } else {
        part.note(format!(
            "No int8 rows: there is no int8 model in `{}` (`cargo xtask model --int8` installs one \
             only when it passes its accuracy gate against fp32).",
            xtask::model::INT8_DIR
        ));
    }
    for (precision, model_dir) in models {
        for engine in ["tract", "onnxruntime"] {
            configs.push(Config {
                engine,
                precision,
                model_dir: model_dir.clone(),
            });
        }
    }
    configs
}

/// What one configuration's stack measured.
struct Measured {
    loads: Vec<LoadResult>,
    forward: Histogram,
    load_seconds: f64,
    steady: machine::Memory,
    after: machine::Memory,
}

pub fn run(bench: &Bench) -> Result<PartReport> {
    let mut part = super::new_part(
        Part::Inference,
        "Inference: POST /predict on every engine × precision, and ONNX Runtime from Python",
    );
    let configs = configs(bench, &mut part);
    let mut python = BTreeMap::new();
    for config in &configs {
        if !python.contains_key(config.precision) {
            let result = onnx_runtime(bench, &config.model_dir, config.precision)?;
            python_figures(&mut part, config.precision, &result);
            python.insert(config.precision, result);
        }
    }
    let photo_bytes =
        std::fs::read(tools::root().join(PHOTO)).with_context(|| format!("reading {PHOTO}"))?;
    let mut distinct_any = false;
    for config in &configs {
        super::step(format!(
            "inference on {} ({}): a stack of its own",
            config.name(),
            config.model_dir.display()
        ));
        let (measured, distinct) = measure(bench, config, &photo_bytes)?;
        distinct_any |= distinct;
        let ort = &python[config.precision];
        config_figures(&mut part, config, &measured);
        goals(&mut part, bench, config, &measured, ort);
        part.loads.extend(measured.loads);
    }
    notes(&mut part, distinct_any, photo_bytes.len());
    Ok(part)
}

/// Starts a stack serving `config`, checks `GET /model` names its engine and precision, and
/// measures it.
fn measure(bench: &Bench, config: &Config, photo_bytes: &[u8]) -> Result<(Measured, bool)> {
    let mut overrides = super::base_overrides();
    overrides.entry("inference".into()).or_default().extend([
        ("INFERENCE_ENGINE".to_owned(), config.engine.to_owned()),
        ("INFERENCE_WORKERS".to_owned(), WORKERS.to_string()),
        ("INFERENCE_THREADS".to_owned(), THREADS.to_string()),
    ]);
    let live = bench.start_stack_serving(overrides, &config.model_dir)?;
    let (status, model) = live
        .http
        .get_json(&live.http.url("inference", "/model"), &live.token)?;
    if status != 200 || model["engine"] != config.engine || model["precision"] != config.precision {
        bail!(
            "GET /model answered {status}: {model}, expected engine {} and precision {}",
            config.engine,
            config.precision
        );
    }
    let port = live.ports().inference;
    let pid = super::pid_of(port)?;
    let steady = machine::memory(pid)?;
    let load_seconds = live.metrics(port)?.sum("inference_model_load_seconds", &[]);
    let distinct = repeats_hit_the_cache(&live, photo_bytes)?;
    let (loads, forward) = measure_loads(bench, &live, config, distinct)?;
    let after = machine::memory(pid)?;
    Ok((
        Measured {
            loads,
            forward,
            load_seconds,
            steady,
            after,
        },
        distinct,
    ))
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
    config: &Config,
    distinct: bool,
) -> Result<(Vec<LoadResult>, Histogram)> {
    let port = live.ports().inference;
    let mut seed = 10_000;
    let mut loads = Vec::new();
    let mut forward = None;
    for concurrency in [1u32, 2, 8] {
        let before = live.metrics(port)?;
        let name = format!(
            "POST /predict via Traefik, c={concurrency}, {}",
            config.name()
        );
        let result = if distinct {
            distinct_load(bench, live, &name, concurrency, &mut seed)?
        } else {
            photo_load(bench, live, &name, concurrency)?
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
    name: &str,
    concurrency: u32,
    seed: &mut u64,
) -> Result<LoadResult> {
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
        super::progress(name, run, bench.runs, &stats);
        runs.push(stats);
    }
    Ok(LoadResult {
        scenario: name.to_owned(),
        concurrency,
        median: oha::median_stats(&runs),
        runs,
    })
}

/// The same photo in every request, `oha -c concurrency`.
fn photo_load(bench: &Bench, live: &Live, name: &str, concurrency: u32) -> Result<LoadResult> {
    bench.measure(
        name,
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

/// Forward, load, memory and images/s of one configuration in the service.
fn config_figures(part: &mut PartReport, config: &Config, m: &Measured) {
    let name = config.name();
    part.figure(
        &format!("{name}: forward in the service, batch 1, mean"),
        m.forward.mean() * 1000.0,
        "ms",
        &format!(
            "`inference_seconds` over {} requests at c=1, {THREADS} thread(s)",
            m.forward.count
        ),
    );
    part.figure(
        &format!("{name}: forward in the service, p99"),
        m.forward.quantile(0.99) * 1000.0,
        "ms",
        "bucket-interpolated from `inference_seconds`",
    );
    part.figure(
        &format!("{name}: model load in the service"),
        m.load_seconds * 1000.0,
        "ms",
        &format!("`inference_model_load_seconds`, {WORKERS} worker lanes"),
    );
    for load in &m.loads {
        part.figure(
            &format!("{name}: images/s at c={}", load.concurrency),
            load.median.ok_per_sec,
            "1/s",
            &format!("2xx/s, median of runs; p50 {:.0} ms", load.median.p50_ms),
        );
    }
    part.figure(
        &format!("{name}: RSS, model loaded, idle"),
        m.steady.rss_mib,
        "MiB",
        "VmRSS before the runs",
    );
    part.figure(
        &format!("{name}: peak RSS"),
        m.after.peak_mib,
        "MiB",
        "VmHWM since start (includes loading)",
    );
}

/// ONNX Runtime from Python: forward time and images/s of each batch × threads setting.
fn python_figures(part: &mut PartReport, precision: &str, ort: &OrtResult) {
    for row in &ort.rows {
        let ms = row.median_ms();
        part.figure(
            &format!(
                "ONNX Runtime (Python) {precision}: batch {}, {} thread(s)",
                row.batch, row.threads
            ),
            ms,
            "ms",
            &format!(
                "median of {} passes, {:.2} images/s; onnxruntime {}, session load {:.0} ms",
                row.forward_ms.len(),
                row.images_per_sec(),
                ort.version,
                row.load_seconds * 1000.0
            ),
        );
    }
}

/// The issue's goals for one configuration, as ratios against baselines of this run.
fn goals(part: &mut PartReport, bench: &Bench, config: &Config, m: &Measured, ort: &OrtResult) {
    let name = config.name();
    let forward_ms = m.forward.mean() * 1000.0;
    let c8 = m
        .loads
        .iter()
        .find(|l| l.concurrency == 8)
        .map_or(0.0, |l| l.median.ok_per_sec);
    let one_thread = ort.row(THREADS, 1).map_or(f64::NAN, OrtRow::median_ms);
    if config.engine == "tract" {
        let ceiling = bench.cores as f64 * 1000.0 / forward_ms;
        part.compare(
            &format!("{name}: images/s at c=8"),
            c8,
            "the engine's ceiling: cores ÷ one-thread forward",
            ceiling,
            "1/s",
            &format!("goal ≥ {TRACT_OF_CEILING}: the service around the model wastes nothing"),
        );
    } else {
        let best = ort.best();
        part.compare(
            &format!("{name}: images/s at c=8"),
            c8,
            &format!(
                "ONNX Runtime (Python) best: batch {}, {} thread(s)",
                best.batch, best.threads
            ),
            best.images_per_sec(),
            "1/s",
            &format!("goal ≥ {ORT_OF_PYTHON_BEST}"),
        );
    }
    part.compare(
        &format!("{name}: forward in the service"),
        forward_ms,
        &format!(
            "ONNX Runtime (Python) {}: batch 1, {THREADS} thread(s)",
            config.precision
        ),
        one_thread,
        "ms",
        &if config.engine == "onnxruntime" {
            format!("goal ≤ {ORT_FORWARD_OF_PYTHON}: the same library, called from Rust")
        } else {
            "above 1: tract is slower than ONNX Runtime on the same file and threads".to_owned()
        },
    );
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
        "Each configuration runs on a stack of its own with the service's defaults, \
         `INFERENCE_WORKERS={WORKERS}` × `INFERENCE_THREADS={THREADS}`. Forward times are for the \
         model alone: in the service `inference_seconds` times only the forward pass; ONNX Runtime \
         in Python runs on a random input of the model's shape."
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
    rows: Vec<OrtRow>,
}

/// One batch × threads setting of ONNX Runtime in Python.
#[derive(Debug, Deserialize)]
struct OrtRow {
    threads: u32,
    batch: u32,
    load_seconds: f64,
    forward_ms: Vec<f64>,
}

impl OrtRow {
    fn median_ms(&self) -> f64 {
        stats::median(self.forward_ms.iter().copied())
    }

    fn images_per_sec(&self) -> f64 {
        f64::from(self.batch) * 1000.0 / self.median_ms()
    }
}

impl OrtResult {
    fn row(&self, threads: u32, batch: u32) -> Option<&OrtRow> {
        self.rows
            .iter()
            .find(|r| r.threads == threads && r.batch == batch)
    }

    /// The setting with the most images/s.
    fn best(&self) -> &OrtRow {
        self.rows
            .iter()
            .max_by(|a, b| a.images_per_sec().total_cmp(&b.images_per_sec()))
            .expect("the script measures at least one setting")
    }
}

/// Times the model's forward pass in ONNX Runtime (in the project virtualenv) at batch 1 and 8
/// with 1 and 2 intra-op threads.
const ORT_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
import onnxruntime as ort

model, manifest, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = json.load(open(manifest))["input"]
rows = []
for threads in (1, 2):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    started = time.perf_counter()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    load_seconds = time.perf_counter() - started
    name = session.get_inputs()[0].name
    for batch in (1, 8):
        x = np.random.default_rng(0).random((batch, 3, size["height"], size["width"]), dtype=np.float32)
        session.run(None, {name: x})
        times = []
        for _ in range(runs if batch == 1 else max(3, runs // 4)):
            t = time.perf_counter()
            session.run(None, {name: x})
            times.append((time.perf_counter() - t) * 1000.0)
        rows.append({"threads": threads, "batch": batch, "load_seconds": load_seconds, "forward_ms": times})
print(json.dumps({"version": ort.__version__, "rows": rows}))
"#;

fn onnx_runtime(bench: &Bench, model_dir: &Path, precision: &str) -> Result<OrtResult> {
    // The same pinned onnxruntime the model converter checks its output with.
    xtask::model::ensure_python()?;
    let script = bench.scratch("ort_forward.py");
    std::fs::write(&script, ORT_SCRIPT)?;
    super::step(format!(
        "ONNX Runtime from Python on the {precision} model: batch 1 and 8, 1 and 2 threads"
    ));
    let out = tools::output(
        Command::new(tools::venv_bin("python")?)
            .arg(&script)
            .arg(model_dir.join("model.onnx"))
            .arg(model_dir.join("manifest.json"))
            .arg(ORT_RUNS.to_string()),
    )?;
    let result: OrtResult = serde_json::from_str(out.trim())
        .with_context(|| format!("reading the ONNX Runtime result: {out}"))?;
    if result.rows.is_empty() {
        bail!("the ONNX Runtime script measured nothing: {out}");
    }
    for row in &result.rows {
        eprintln!(
            "    ONNX Runtime {} {precision}, batch {}, {} thread(s): median forward {:.1} ms, {:.2} images/s",
            result.version,
            row.batch,
            row.threads,
            row.median_ms(),
            row.images_per_sec()
        );
    }
    Ok(result)
}
