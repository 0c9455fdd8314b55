//! The benchmark report: `target/bench/report.json` (every run's numbers) and
//! `target/bench/report.md` (medians, baselines and ratios as tables). Running one part replaces
//! that part's section and keeps the others, each stamped with when and on which commit it ran.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{machine::Machine, oha::RunStats};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub updated_at: String,
    /// By part name, in the order of [`super::Part`].
    pub parts: BTreeMap<String, PartReport>,
}

/// One part's findings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartReport {
    pub title: String,
    pub order: u8,
    pub measured_at: String,
    pub commit: String,
    /// `release`, or `debug` for a smoke run whose figures mean nothing.
    #[serde(default)]
    pub build: String,
    pub loads: Vec<LoadResult>,
    pub figures: Vec<Figure>,
    pub comparisons: Vec<Comparison>,
    pub notes: Vec<String>,
}

/// Repeated oha runs of one scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    pub scenario: String,
    pub concurrency: u32,
    pub runs: Vec<RunStats>,
    pub median: RunStats,
}

/// A single measured figure (median of the runs unless `detail` says otherwise).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub detail: String,
}

/// A figure next to its baseline measured in the same run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub name: String,
    pub value: f64,
    pub baseline_name: String,
    pub baseline: f64,
    pub unit: String,
    /// `value / baseline`.
    pub ratio: f64,
    /// How to read the ratio.
    pub meaning: String,
}

impl PartReport {
    pub fn figure(&mut self, name: &str, value: f64, unit: &str, detail: &str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            detail: detail.into(),
        });
    }

    pub fn compare(
        &mut self,
        name: &str,
        value: f64,
        baseline_name: &str,
        baseline: f64,
        unit: &str,
        meaning: &str,
    ) {
        self.comparisons.push(Comparison {
            name: name.into(),
            value,
            baseline_name: baseline_name.into(),
            baseline,
            unit: unit.into(),
            ratio: super::stats::ratio(value, baseline),
            meaning: meaning.into(),
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The load result for `scenario`, if measured.
    pub fn load(&self, scenario: &str) -> Option<&LoadResult> {
        self.loads.iter().find(|l| l.scenario == scenario)
    }
}

impl Report {
    /// The report in `dir`, or an empty one.
    pub fn load(dir: &Path) -> Self {
        fs::read_to_string(dir.join("report.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        fs::write(dir.join("report.md"), self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "# Forgettable Images — benchmark report\n");
        let _ = writeln!(
            out,
            "Machine: **{}**, {} cores, {:.1} GiB memory, Linux {}. Updated {}.\n",
            m.cpu_model, m.cores, m.memory_gib, m.kernel, self.updated_at
        );
        let _ = writeln!(
            out,
            "Native stack, release build, loopback only; load from `oha` (`--no-tui --output-format json`). \
             Each figure is the median of repeated runs; every run is in `report.json`. \
             Reproduce with `cargo xtask bench [part]`.\n"
        );
        let mut parts: Vec<&PartReport> = self.parts.values().collect();
        parts.sort_by_key(|p| p.order);
        for part in parts {
            part.markdown_into(&mut out);
        }
        out
    }
}

impl PartReport {
    fn markdown_into(&self, out: &mut String) {
        let _ = writeln!(out, "## {}\n", self.title);
        if self.build == "debug" {
            let _ = writeln!(
                out,
                "**Debug build: a smoke run, not figures to compare.** _Measured {} on commit {}._\n",
                self.measured_at, self.commit
            );
        } else {
            let _ = writeln!(
                out,
                "_Measured {} on commit {}, {} build._\n",
                self.measured_at, self.commit, self.build
            );
        }
        if !self.loads.is_empty() {
            let _ = writeln!(out, "| scenario | concurrency | runs | req/s | 2xx/s | p50 ms | p99 ms | MB/s sent | 2xx share |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for load in &self.loads {
                let s = &load.median;
                let all = s.answered + s.errors;
                let share = if all == 0 {
                    f64::NAN
                } else {
                    s.ok as f64 / all as f64 * 100.0
                };
                // A scenario not answered 2xx measured an error path: say so next to it.
                let flag = if share < 99.0 {
                    format!(" ⚠ {}", statuses(&s.statuses))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "| {}{} | {} | {} | {} | {} | {} | {} | {} | {}% |",
                    load.scenario,
                    flag,
                    load.concurrency,
                    load.runs.len(),
                    num(s.requests_per_sec),
                    num(s.ok_per_sec),
                    num(s.p50_ms),
                    num(s.p99_ms),
                    s.upload_mb_per_sec.map_or("–".into(), num),
                    num(share)
                );
            }
            out.push('\n');
        }
        if !self.figures.is_empty() {
            let _ = writeln!(out, "| figure | value | how |");
            let _ = writeln!(out, "|---|---:|---|");
            for f in &self.figures {
                let _ = writeln!(
                    out,
                    "| {} | {} {} | {} |",
                    f.name,
                    num(f.value),
                    f.unit,
                    f.detail
                );
            }
            out.push('\n');
        }
        if !self.comparisons.is_empty() {
            let _ = writeln!(
                out,
                "| figure | value | baseline | baseline value | ratio | reading |"
            );
            let _ = writeln!(out, "|---|---:|---|---:|---:|---|");
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "| {} | {} {} | {} | {} {} | **{}×** | {} |",
                    c.name,
                    num(c.value),
                    c.unit,
                    c.baseline_name,
                    num(c.baseline),
                    c.unit,
                    ratio(c.ratio),
                    c.meaning
                );
            }
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
    }
}

/// `404: 12, 200: 3`, most frequent first.
fn statuses(statuses: &BTreeMap<String, u64>) -> String {
    let mut all: Vec<(&String, &u64)> = statuses.iter().collect();
    all.sort_by(|a, b| b.1.cmp(a.1));
    all.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A number with sensible precision for a table (3 significant figures, no exponent).
pub fn num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_significant_figures() {
        assert_eq!(num(1234.567), "1235");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(num(0.012345), "0.012");
        assert_eq!(num(f64::NAN), "n/a");
    }

    #[test]
    fn the_markdown_shows_the_machine_and_each_part_s_ratio() {
        let mut part = PartReport {
            title: "Gateway".into(),
            order: 1,
            ..PartReport::default()
        };
        part.compare(
            "GET /me via Traefik",
            500.0,
            "direct to users-2",
            1000.0,
            "req/s",
            "share of direct throughput kept",
        );
        part.loads.push(LoadResult {
            scenario: "GET /me".into(),
            concurrency: 32,
            ..LoadResult::default()
        });
        let mut report = Report::default();
        report.machine.cpu_model = "Test CPU".into();
        report.machine.cores = 2;
        report.parts.insert("gateway".into(), part);
        let md = report.markdown();
        assert!(md.contains("**Test CPU**, 2 cores"), "{md}");
        assert!(md.contains("| **0.50×** |"), "{md}");
        assert!(md.contains("| GET /me | 32 | 0 |"), "{md}");
    }

    #[test]
    fn a_scenario_mostly_answered_with_errors_is_flagged_with_its_statuses() {
        let mut part = PartReport {
            title: "Gateway".into(),
            ..PartReport::default()
        };
        let mut load = LoadResult {
            scenario: "GET /me".into(),
            concurrency: 32,
            ..LoadResult::default()
        };
        load.median.answered = 10;
        load.median.ok = 1;
        load.median.statuses = BTreeMap::from([("404".into(), 9), ("200".into(), 1)]);
        part.loads.push(load);
        let mut md = String::new();
        part.markdown_into(&mut md);
        assert!(md.contains("| GET /me ⚠ 404: 9, 200: 1 | 32 |"), "{md}");
    }

    #[test]
    fn saving_then_loading_keeps_every_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut report = Report::default();
        report.parts.insert(
            "users".into(),
            PartReport {
                title: "Users".into(),
                ..PartReport::default()
            },
        );
        report.save(dir.path()).expect("saved");
        let again = Report::load(dir.path());
        assert_eq!(
            again.parts.get("users").map(|p| p.title.as_str()),
            Some("Users")
        );
        assert!(dir.path().join("report.md").exists());
    }
}
