//! Uploads: MB/s of 5 MiB PNG uploads through the gateway at concurrency 8, and the peak
//! resident memory of images_service while they run, next to the bytes sent.
//!
//! images_service deduplicates an owner's identical uploads (same SHA-256): a second copy is
//! streamed and hashed but neither decoded nor stored. oha sends one body over and over, so the
//! real path is measured with distinct images, each sent by its own `oha -n 1` with eight of
//! them running at once; the plain `oha -c 8` run over one body is reported beside it as the
//! deduplicated path.
//!
//! Baselines, measured in the same invocation on the same machine:
//! - the service alone: the same distinct uploads sent straight to images_service, so the ratio
//!   is what the gateway (Traefik buffering and forwarding 5 MiB bodies) costs;
//! - storage: eight writers putting the same bytes into files in the stack's data directory
//!   (write + close, like the local object store; the page cache absorbs them as it does for the
//!   service).

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use anyhow::{Context, Result};

use super::{
    fixtures, machine,
    oha::{self, Limit, Load, RunStats},
    report::{LoadResult, PartReport},
    Bench, Live, Part, PASSWORD,
};

/// The upload size the issue asks for.
const IMAGE_BYTES: u64 = 5 * 1024 * 1024;
const CONCURRENCY: u32 = 8;
/// Distinct uploads per run: three rounds of eight.
const UPLOADS_PER_RUN: usize = 24;
/// The replaced Python service's upload speed on this machine class, MiB/s, without any image
/// validation (a fixed figure from the issue that set the goal, not measured here).
const OLD_SERVICE_UPLOAD_MIB_PER_SEC: f64 = 268.0;
const MIB: f64 = 1024.0 * 1024.0;
const FRESH: &str = "POST /upload via Traefik, distinct 5 MiB PNGs";
const REPEATED: &str = "POST /upload via Traefik, one 5 MiB PNG repeated (deduplicated)";
const DIRECT: &str = "POST /upload direct to images_service, distinct 5 MiB PNGs";

/// The multipart bodies sent: distinct 5 MiB noise PNGs.
struct Bodies {
    paths: Vec<PathBuf>,
    content_type: String,
    side: u32,
    /// Bytes of one multipart body.
    body_bytes: u64,
}

/// What the runs measured.
struct Measured {
    fresh: LoadResult,
    direct: LoadResult,
    repeated: LoadResult,
    idle_rss: f64,
    /// Median over the distinct runs.
    fresh_peak: f64,
    repeated_peak: f64,
    disk_mb_per_sec: f64,
}

pub fn run(bench: &Bench, live: &Live) -> Result<PartReport> {
    let mut part = super::new_part(Part::Images, "Images: 5 MiB uploads");
    let bodies = write_bodies(bench)?;
    let measured = measure(bench, live, &bodies)?;
    figures(&mut part, &bodies, &measured);
    comparisons(&mut part, &bodies, &measured);
    part.loads = vec![measured.fresh, measured.direct, measured.repeated];
    part.note(
        "Distinct uploads: each request is its own `oha -n 1` (8 running at once, a new process per upload), \
         so the latency columns are per upload and MB/s is over the wall time of the run.",
    );
    Ok(part)
}

fn write_bodies(bench: &Bench) -> Result<Bodies> {
    super::step(format!(
        "writing {UPLOADS_PER_RUN} distinct noise PNGs of about 5 MiB"
    ));
    let side = fixtures::side_for_bytes(IMAGE_BYTES);
    let mut paths = Vec::new();
    let mut content_type = String::new();
    for i in 0..UPLOADS_PER_RUN {
        let png = bench.scratch(&format!("upload-{i}.png"));
        fixtures::write_noise_png(&png, side, side, 1000 + i as u64)?;
        let body = bench.scratch(&format!("upload-{i}.multipart"));
        content_type = fixtures::write_multipart(
            &body,
            &format!("noise-{i}.png"),
            "image/png",
            &std::fs::read(&png)?,
        )?;
        std::fs::remove_file(&png)?;
        paths.push(body);
    }
    let body_bytes = super::file_len(&paths[0])?;
    Ok(Bodies {
        paths,
        content_type,
        side,
        body_bytes,
    })
}

fn measure(bench: &Bench, live: &Live, bodies: &Bodies) -> Result<Measured> {
    let images_pid = super::pid_of(live.ports().images)?;
    let idle = machine::memory(images_pid)?;

    // Distinct images: a fresh account per run, so run 2 is not deduplicated against run 1.
    let gateway = Target {
        name: FRESH,
        url: live.web("/upload"),
        host: Some("images.localhost"),
    };
    let (fresh, fresh_peaks) = distinct_runs(
        bench,
        live,
        &gateway,
        &bodies.paths,
        &bodies.content_type,
        images_pid,
    )?;
    let direct = Target {
        name: DIRECT,
        url: format!("http://127.0.0.1:{}/upload", live.ports().images),
        host: None,
    };
    let (direct, _) = distinct_runs(
        bench,
        live,
        &direct,
        &bodies.paths,
        &bodies.content_type,
        images_pid,
    )?;

    machine::reset_peak(images_pid)?;
    let repeated = bench.measure(
        REPEATED,
        &Load::post(
            live.web("/upload"),
            &bodies.paths[0],
            &bodies.content_type,
            CONCURRENCY,
            Limit::Requests(UPLOADS_PER_RUN as u64 * 2),
        )
        .header("Host", "images.localhost")
        .header("Authorization", &live.bearer()),
    )?;
    let repeated_peak = machine::memory(images_pid)?.peak_mib;
    let disk_mb_per_sec = disk_baseline(bench, live, &bodies.paths[0])?;
    Ok(Measured {
        fresh,
        direct,
        repeated,
        idle_rss: idle.rss_mib,
        fresh_peak: super::stats::median(fresh_peaks.iter().copied()),
        repeated_peak,
        disk_mb_per_sec,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

fn figures(part: &mut PartReport, bodies: &Bodies, m: &Measured) {
    let body_bytes = bodies.body_bytes;
    let png_bytes = body_bytes - 300; // the multipart framing is under 300 bytes
    let side = bodies.side;
    part.figure(
        "upload throughput, distinct images",
        m.fresh.median.upload_mb_per_sec.unwrap_or(f64::NAN),
        "MB/s",
        "2xx bytes ÷ wall time, c=8",
    );
    part.figure(
        "uploads/s, distinct images",
        m.fresh.median.ok_per_sec,
        "1/s",
        "c=8",
    );
    part.figure(
        "image size",
        mib(png_bytes),
        "MiB",
        &format!("{side}×{side} RGB noise PNG (incompressible)"),
    );
    part.figure(
        "data sent per run",
        mib(body_bytes * UPLOADS_PER_RUN as u64),
        "MiB",
        &format!(
            "{UPLOADS_PER_RUN} uploads × {:.2} MiB multipart body",
            mib(body_bytes)
        ),
    );
    part.figure(
        "data in flight at once",
        mib(body_bytes * u64::from(CONCURRENCY)),
        "MiB",
        "8 bodies",
    );
    part.figure(
        "images_service RSS before uploads",
        m.idle_rss,
        "MiB",
        "VmRSS",
    );
    part.figure(
        "images_service peak RSS, distinct uploads",
        m.fresh_peak,
        "MiB",
        "VmHWM reset before each run; median of runs",
    );
    part.figure(
        "images_service peak RSS, repeated upload",
        m.repeated_peak,
        "MiB",
        "VmHWM over the repeated runs",
    );
}

fn comparisons(part: &mut PartReport, bodies: &Bodies, m: &Measured) {
    let fresh_mb = m.fresh.median.upload_mb_per_sec.unwrap_or(f64::NAN);
    part.compare(
        "images_service peak RSS above idle",
        m.fresh_peak - m.idle_rss,
        "bytes in flight (8 × 5 MiB)",
        mib(bodies.body_bytes * u64::from(CONCURRENCY)),
        "MiB",
        "memory per byte in flight: under 1 means bodies are streamed and validated, not held whole",
    );
    part.compare(
        "upload MiB/s, distinct images, fully validated",
        fresh_mb * 1e6 / MIB,
        "the replaced service, which stored without validating",
        OLD_SERVICE_UPLOAD_MIB_PER_SEC,
        "MiB/s",
        "at least 1: validation costs less than the old service's whole upload",
    );
    part.compare(
        "upload MB/s, distinct images",
        fresh_mb,
        "the same uploads straight to images_service",
        m.direct.median.upload_mb_per_sec.unwrap_or(f64::NAN),
        "MB/s",
        "share of the service's own upload speed left through the gateway",
    );
    part.compare(
        "upload MB/s, distinct images",
        fresh_mb,
        "8 writers to the data directory",
        m.disk_mb_per_sec,
        "MB/s",
        "share of the raw storage write speed",
    );
    part.compare(
        "upload MB/s, repeated image",
        m.repeated.median.upload_mb_per_sec.unwrap_or(f64::NAN),
        "distinct images",
        fresh_mb,
        "MB/s",
        "what deduplication saves (no decode, no commit)",
    );
}

/// Where distinct uploads go.
struct Target {
    name: &'static str,
    url: String,
    host: Option<&'static str>,
}

/// `bench.runs` runs of distinct uploads to `target`, each run by a new account; also returns the
/// peak RSS of images_service in each run.
fn distinct_runs(
    bench: &Bench,
    live: &Live,
    target: &Target,
    bodies: &[std::path::PathBuf],
    content_type: &str,
    images_pid: u32,
) -> Result<(LoadResult, Vec<f64>)> {
    let body_bytes = super::file_len(&bodies[0])?;
    let mut runs = Vec::new();
    let mut peaks = Vec::new();
    for run in 1..=bench.runs {
        let user = format!(
            "bench-upload-{}-{run}",
            if target.host.is_some() {
                "gw"
            } else {
                "direct"
            }
        );
        let token = live.http.account(&user, PASSWORD)?;
        machine::reset_peak(images_pid)?;
        let stats = upload_distinct(bench, target, &token, bodies, content_type, body_bytes)?;
        let memory = machine::memory(images_pid)?;
        super::progress(target.name, run, bench.runs, &stats);
        eprintln!("    images_service peak RSS {:.0} MiB", memory.peak_mib);
        peaks.push(memory.peak_mib);
        runs.push(stats);
    }
    let result = LoadResult {
        scenario: target.name.into(),
        concurrency: CONCURRENCY,
        median: oha::median_stats(&runs),
        runs,
    };
    Ok((result, peaks))
}

/// Sends every body once, `CONCURRENCY` at a time, each with its own `oha -n 1`.
fn upload_distinct(
    bench: &Bench,
    target: &Target,
    token: &str,
    bodies: &[std::path::PathBuf],
    content_type: &str,
    body_bytes: u64,
) -> Result<RunStats> {
    let next = AtomicUsize::new(0);
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let results: Vec<Result<Vec<RunStats>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(body) = bodies.get(i) else {
                            return Ok(mine);
                        };
                        let mut load =
                            Load::post(&target.url, body, content_type, 1, Limit::Requests(1))
                                .header("Authorization", &bearer);
                        if let Some(host) = target.host {
                            load = load.header("Host", host);
                        }
                        mine.push(load.run(&bench.oha)?);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an upload worker panicked")))
            })
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut singles = Vec::new();
    for result in results {
        singles.extend(result?);
    }
    Ok(oha::combine_singles(&singles, wall, body_bytes))
}

/// MB/s of eight threads each writing the body to its own new file in the data directory,
/// three files each.
fn disk_baseline(bench: &Bench, live: &Live, body: &std::path::Path) -> Result<f64> {
    let bytes = std::fs::read(body)?;
    let dir = live.stack.data_dir().join("bench-disk-baseline");
    std::fs::create_dir_all(&dir)?;
    let mut speeds = Vec::new();
    for run in 0..bench.runs {
        let started = Instant::now();
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = (0..CONCURRENCY)
                .map(|w| {
                    let (dir, bytes) = (&dir, &bytes);
                    scope.spawn(move || -> Result<()> {
                        for i in 0..UPLOADS_PER_RUN as u32 / CONCURRENCY {
                            std::fs::write(dir.join(format!("{run}-{w}-{i}")), bytes)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
            }
            Ok(())
        })
        .context("disk baseline")?;
        let seconds = started.elapsed().as_secs_f64();
        speeds.push(bytes.len() as f64 * UPLOADS_PER_RUN as f64 / seconds / 1e6);
    }
    std::fs::remove_dir_all(&dir)?;
    let median = super::stats::median(speeds.iter().copied());
    eprintln!("    disk baseline: {median:.0} MB/s (8 writers, page cache)");
    Ok(median)
}
