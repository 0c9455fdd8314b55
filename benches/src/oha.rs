//! The load generator: `oha` (crates.io), pinned and installed into `./.tools` when missing,
//! run with `--no-tui --output-format json` and read back into [`RunStats`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use xtask::tools::{self, step};

/// The oha release the suite measures with (a newer one may count differently).
pub const OHA_VERSION: &str = "1.16.0";

/// The oha binary, installed with `cargo install` into `./.tools` when missing or of another version.
pub fn ensure() -> Result<PathBuf> {
    let root = tools::root().join(".tools");
    let bin = root.join("bin/oha");
    if bin.exists() && version(&bin).is_some_and(|v| v == OHA_VERSION) {
        return Ok(bin);
    }
    step(format!(
        "installing the load generator: cargo install oha --locked --version {OHA_VERSION} --root .tools (a few minutes, once)"
    ));
    tools::run(
        xtask::cargo::command()
            .args([
                "install",
                "oha",
                "--locked",
                "--version",
                OHA_VERSION,
                "--root",
            ])
            .arg(&root),
    )?;
    if !bin.exists() {
        bail!(
            "cargo install oha finished but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

fn version(bin: &Path) -> Option<String> {
    let out = tools::output(Command::new(bin).arg("--version")).ok()?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

/// One bounded oha run: `requests` (`-n`) or `duration_secs` (`-z`), never unbounded.
#[derive(Clone, Debug)]
pub struct Load {
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
    pub body_file: Option<PathBuf>,
    pub content_type: Option<String>,
    pub concurrency: u32,
    pub limit: Limit,
}

/// How a run is bounded.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    Requests(u64),
    Seconds(u64),
}

impl Load {
    pub fn get(url: impl Into<String>, concurrency: u32, limit: Limit) -> Self {
        Self {
            url: url.into(),
            method: "GET",
            headers: Vec::new(),
            body_file: None,
            content_type: None,
            concurrency,
            limit,
        }
    }

    pub fn post(
        url: impl Into<String>,
        body_file: &Path,
        content_type: &str,
        concurrency: u32,
        limit: Limit,
    ) -> Self {
        Self {
            method: "POST",
            body_file: Some(body_file.to_path_buf()),
            content_type: Some(content_type.to_owned()),
            ..Self::get(url, concurrency, limit)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command line arguments (after the binary).
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            vec!["--no-tui".into(), "--output-format".into(), "json".into()];
        args.extend([
            "-c".into(),
            self.concurrency.to_string(),
            "-m".into(),
            self.method.into(),
        ]);
        match self.limit {
            Limit::Requests(n) => args.extend(["-n".into(), n.to_string()]),
            // Requests still running at the deadline are awaited, so none is counted as failed.
            Limit::Seconds(s) => {
                args.extend([
                    "-z".into(),
                    format!("{s}s"),
                    "--wait-ongoing-requests-after-deadline".into(),
                ]);
            }
        }
        // A hung server must not hang the benchmark.
        args.extend(["-t".into(), "60s".into()]);
        for (name, value) in &self.headers {
            // oha sets Host from the URL unless told with its own option.
            if name.eq_ignore_ascii_case("host") {
                args.extend(["--host".into(), value.clone()]);
            } else {
                args.extend(["-H".into(), format!("{name}: {value}")]);
            }
        }
        if let Some(content_type) = &self.content_type {
            args.extend(["-T".into(), content_type.clone()]);
        }
        if let Some(body) = &self.body_file {
            args.extend(["-D".into(), body.display().to_string()]);
        }
        args.push(self.url.clone());
        args
    }

    /// Runs oha and reads its JSON summary.
    pub fn run(&self, oha: &Path) -> Result<RunStats> {
        let out = tools::output(Command::new(oha).args(self.args()))
            .with_context(|| format!("oha {} {}", self.method, self.url))?;
        let report: OhaReport =
            serde_json::from_str(&out).with_context(|| format!("reading oha's JSON: {out}"))?;
        Ok(RunStats::from_report(&report, self.body_file.as_deref()))
    }
}

/// The part of `oha --output-format json` the suite reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OhaReport {
    pub summary: OhaSummary,
    pub latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    pub status_code_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    pub error_distribution: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OhaSummary {
    /// Wall time of the whole run, seconds.
    pub total: f64,
    pub average: Option<f64>,
    pub requests_per_sec: f64,
}

/// Request bodies from this size on get MB/s figures (uploads, not JSON).
pub const THROUGHPUT_MIN_BODY: u64 = 64 * 1024;

/// What one load run measured. Latencies in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStats {
    /// Requests that got an answer, any status.
    pub answered: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Requests that got no answer (connection errors, timeouts).
    pub errors: u64,
    pub seconds: f64,
    /// All answered requests per second, as oha counts them.
    pub requests_per_sec: f64,
    /// 2xx answers per second.
    pub ok_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Request body bytes of 2xx requests per second, in MB/s (10^6), when a body was sent.
    pub upload_mb_per_sec: Option<f64>,
    /// Request body bytes of every answered request per second, MB/s, when a body was sent.
    #[serde(default)]
    pub sent_mb_per_sec: Option<f64>,
    pub statuses: BTreeMap<String, u64>,
}

impl RunStats {
    fn from_report(report: &OhaReport, body: Option<&Path>) -> Self {
        let answered: u64 = report.status_code_distribution.values().sum();
        let ok: u64 = report
            .status_code_distribution
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        let errors: u64 = report.error_distribution.values().sum();
        let seconds = report.summary.total;
        let pct = |key: &str| {
            report
                .latency_percentiles
                .get(key)
                .copied()
                .flatten()
                .unwrap_or(f64::NAN)
                * 1000.0
        };
        // Throughput in MB/s only means something for bodies that are the point of the request.
        let body_bytes = body
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .filter(|len| *len >= THROUGHPUT_MIN_BODY);
        let per_sec = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
        Self {
            answered,
            ok,
            errors,
            seconds,
            requests_per_sec: report.summary.requests_per_sec,
            ok_per_sec: per_sec(ok as f64),
            mean_ms: report.summary.average.unwrap_or(f64::NAN) * 1000.0,
            p50_ms: pct("p50"),
            p90_ms: pct("p90"),
            p99_ms: pct("p99"),
            upload_mb_per_sec: body_bytes.map(|b| per_sec(b as f64 * ok as f64) / 1e6),
            sent_mb_per_sec: body_bytes.map(|b| per_sec(b as f64 * answered as f64) / 1e6),
            statuses: report
                .status_code_distribution
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .chain(
                    report
                        .error_distribution
                        .iter()
                        .map(|(k, v)| (format!("error: {k}"), *v)),
                )
                .collect(),
        }
    }

    /// Share of requests answered with 2xx (0..1).
    pub fn ok_share(&self) -> f64 {
        let all = self.answered + self.errors;
        if all == 0 {
            0.0
        } else {
            self.ok as f64 / all as f64
        }
    }
}

/// The median of several runs, field by field (each figure's own median).
pub fn median_stats(runs: &[RunStats]) -> RunStats {
    let m = |f: fn(&RunStats) -> f64| crate::stats::median(runs.iter().map(f));
    let mut statuses = BTreeMap::new();
    for run in runs {
        for (k, v) in &run.statuses {
            *statuses.entry(k.clone()).or_insert(0) += v;
        }
    }
    RunStats {
        answered: runs.iter().map(|r| r.answered).sum(),
        ok: runs.iter().map(|r| r.ok).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        seconds: runs.iter().map(|r| r.seconds).sum(),
        requests_per_sec: m(|r| r.requests_per_sec),
        ok_per_sec: m(|r| r.ok_per_sec),
        mean_ms: m(|r| r.mean_ms),
        p50_ms: m(|r| r.p50_ms),
        p90_ms: m(|r| r.p90_ms),
        p99_ms: m(|r| r.p99_ms),
        upload_mb_per_sec: median_of_some(runs, |r| r.upload_mb_per_sec),
        sent_mb_per_sec: median_of_some(runs, |r| r.sent_mb_per_sec),
        statuses,
    }
}

/// One figure set from many single-request oha runs (`-n 1`) that ran side by side over
/// `wall_seconds`: latencies are percentiles of the individual requests, rates use the wall time.
pub fn combine_singles(singles: &[RunStats], wall_seconds: f64, body_bytes: u64) -> RunStats {
    use crate::stats::percentile;
    let latencies = || singles.iter().map(|r| r.mean_ms);
    let answered: u64 = singles.iter().map(|r| r.answered).sum();
    let ok: u64 = singles.iter().map(|r| r.ok).sum();
    let per_sec = |n: f64| {
        if wall_seconds > 0.0 {
            n / wall_seconds
        } else {
            0.0
        }
    };
    let mut statuses = BTreeMap::new();
    for run in singles {
        for (k, v) in &run.statuses {
            *statuses.entry(k.clone()).or_insert(0) += v;
        }
    }
    let n = singles.len().max(1) as f64;
    RunStats {
        answered,
        ok,
        errors: singles.iter().map(|r| r.errors).sum(),
        seconds: wall_seconds,
        requests_per_sec: per_sec(answered as f64),
        ok_per_sec: per_sec(ok as f64),
        mean_ms: latencies().sum::<f64>() / n,
        p50_ms: percentile(latencies(), 0.5),
        p90_ms: percentile(latencies(), 0.9),
        p99_ms: percentile(latencies(), 0.99),
        upload_mb_per_sec: Some(per_sec(body_bytes as f64 * ok as f64) / 1e6),
        sent_mb_per_sec: Some(per_sec(body_bytes as f64 * answered as f64) / 1e6),
        statuses,
    }
}

fn median_of_some(runs: &[RunStats], f: fn(&RunStats) -> Option<f64>) -> Option<f64> {
    let values: Option<Vec<f64>> = runs.iter().map(f).collect();
    values.filter(|v| !v.is_empty()).map(crate::stats::median)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.05, "fastest": 0.001,
                  "average": 0.004, "requestsPerSec": 50.0, "totalData": 1000, "sizePerRequest": 10, "sizePerSec": 500},
      "responseTimeHistogram": {"0.001": 3},
      "latencyPercentiles": {"p10": 0.001, "p25": 0.002, "p50": 0.003, "p75": 0.004, "p90": 0.006,
                             "p95": 0.008, "p99": 0.02, "p99.9": 0.05, "p99.99": 0.05},
      "rps": {}, "details": {},
      "statusCodeDistribution": {"200": 90, "503": 10},
      "errorDistribution": {"connection closed": 2}
    }"#;

    #[test]
    fn an_oha_json_report_becomes_run_stats_in_milliseconds() {
        let report: OhaReport = serde_json::from_str(SAMPLE).expect("sample parses");
        let stats = RunStats::from_report(&report, None);
        assert_eq!((stats.answered, stats.ok, stats.errors), (100, 90, 2));
        assert!((stats.p50_ms - 3.0).abs() < 1e-9 && (stats.p99_ms - 20.0).abs() < 1e-9);
        assert!((stats.ok_per_sec - 45.0).abs() < 1e-9);
        assert!((stats.ok_share() - 90.0 / 102.0).abs() < 1e-9);
        assert_eq!(stats.statuses.get("error: connection closed"), Some(&2));
        assert_eq!(stats.upload_mb_per_sec, None);
    }

    #[test]
    fn a_load_is_always_bounded_and_never_opens_the_tui() {
        let args = Load::get("http://127.0.0.1:1/", 8, Limit::Seconds(3))
            .header("Host", "users.localhost")
            .header("Authorization", "Bearer t")
            .args();
        let joined = args.join(" ");
        assert!(
            joined.starts_with("--no-tui --output-format json"),
            "{joined}"
        );
        assert!(
            joined.contains("-z 3s") && joined.contains("--host users.localhost"),
            "{joined}"
        );
        assert!(joined.contains("-H Authorization: Bearer t"), "{joined}");
        let args = Load::get("http://127.0.0.1:1/", 1, Limit::Requests(10))
            .args()
            .join(" ");
        assert!(args.contains("-n 10"), "{args}");
    }

    #[test]
    fn single_request_runs_combine_into_rates_over_the_wall_time() {
        let one = |ms: f64, code: &str| RunStats {
            answered: 1,
            ok: u64::from(code.starts_with('2')),
            mean_ms: ms,
            statuses: BTreeMap::from([(code.to_owned(), 1)]),
            ..RunStats::default()
        };
        let combined = combine_singles(
            &[one(10.0, "201"), one(30.0, "201"), one(20.0, "500")],
            2.0,
            1_000_000,
        );
        assert_eq!((combined.answered, combined.ok), (3, 2));
        assert_eq!((combined.p50_ms, combined.ok_per_sec), (20.0, 1.0));
        assert_eq!(combined.upload_mb_per_sec, Some(1.0));
        assert_eq!(combined.statuses.get("201"), Some(&2));
    }

    #[test]
    fn the_median_of_runs_takes_each_figure_s_own_median() {
        let run = |p50: f64, rps: f64| RunStats {
            p50_ms: p50,
            requests_per_sec: rps,
            ok: 1,
            ..RunStats::default()
        };
        let median = median_stats(&[run(1.0, 300.0), run(5.0, 100.0), run(3.0, 200.0)]);
        assert_eq!(
            (median.p50_ms, median.requests_per_sec, median.ok),
            (3.0, 200.0, 3)
        );
    }
}
