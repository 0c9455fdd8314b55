//! Checks of `monitoring/` with the real Prometheus tooling.
//!
//! - `promtool check config` on a copy of the Prometheus configuration laid out as the native
//!   launcher and Compose use it (`prometheus.yml`, `rules/`, `targets/`), so file-based service
//!   discovery and the rule glob resolve;
//! - `promtool check rules` on every rule file, `promtool test rules` on every unit-test file, and
//!   that every alert has a firing and a not-firing case;
//! - the Grafana dashboards: valid JSON for the pinned Grafana, unique ids, every panel and query
//!   on the `${datasource}` variable, and every query valid PromQL (parsed by promtool).
//!
//! The dashboard and rule readers are public: the end-to-end monitoring test evaluates the same
//! queries against a Prometheus that scraped a real traffic run.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::tools;

/// Dashboard `schemaVersion` written by the pinned Grafana (`grafana/grafana:11.3.1`).
pub const GRAFANA_SCHEMA_VERSION: u64 = 39;
/// The UID of the provisioned Prometheus data source.
pub const DATASOURCE_UID: &str = "prometheus";
/// How every panel and query names its data source: through the `datasource` variable.
pub const DATASOURCE_VARIABLE: &str = "${datasource}";

/// `monitoring/` of the workspace.
pub fn monitoring_dir() -> PathBuf {
    tools::root().join("monitoring")
}

/// One PromQL query of a dashboard panel.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// `gateway.json`, …
    pub dashboard: String,
    pub panel_id: u64,
    pub panel_title: String,
    pub ref_id: String,
    /// The expression as written, with Grafana variables such as `$__rate_interval`.
    pub expr: String,
}

impl DashboardQuery {
    /// Where the query is, for messages.
    pub fn location(&self) -> String {
        format!(
            "{} panel {} \"{}\" query {}",
            self.dashboard, self.panel_id, self.panel_title, self.ref_id
        )
    }
}

/// One alerting rule of `monitoring/rules/*.yml`.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub file: String,
    pub name: String,
}

/// Replaces Grafana's built-in interval variables so a dashboard expression can be sent to
/// Prometheus directly. `rate_interval` and `range` are PromQL durations such as `1m`.
pub fn grafana_to_promql(expr: &str, rate_interval: &str, range: &str) -> Result<String> {
    let seconds = duration_seconds(range)?;
    // Longer names first, so `$__range_s` is not read as `$__range` + `_s`.
    let replacements = [
        ("${__rate_interval}", rate_interval.to_owned()),
        ("$__rate_interval", rate_interval.to_owned()),
        ("${__interval}", "15s".to_owned()),
        ("$__interval_ms", "15000".to_owned()),
        ("$__interval", "15s".to_owned()),
        ("$__range_ms", (seconds * 1000).to_string()),
        ("$__range_s", seconds.to_string()),
        ("${__range}", range.to_owned()),
        ("$__range", range.to_owned()),
    ];
    let mut promql = expr.to_owned();
    for (variable, value) in replacements {
        promql = promql.replace(variable, &value);
    }
    if let Some(at) = promql.find('$') {
        bail!(
            "unknown Grafana variable in {expr:?} at {:?}",
            &promql[at..]
        );
    }
    Ok(promql)
}

fn duration_seconds(duration: &str) -> Result<u64> {
    let split = duration
        .find(|c: char| !c.is_ascii_digit())
        .context("a duration needs a unit")?;
    let (number, unit) = duration.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("bad duration {duration:?}"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => bail!("unsupported duration unit in {duration:?}"),
    };
    Ok(number * factor)
}

/// The dashboards (`monitoring/grafana/dashboards/*.json`) by file name, parsed.
pub fn dashboards(monitoring: &Path) -> Result<Vec<(String, Value)>> {
    let dir = monitoring.join("grafana/dashboards");
    let mut found = Vec::new();
    for path in files_with_extension(&dir, "json")? {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        found.push((file_name(&path), json));
    }
    ensure!(!found.is_empty(), "no dashboard in {}", dir.display());
    Ok(found)
}

/// Every panel query of every dashboard.
pub fn dashboard_queries(monitoring: &Path) -> Result<Vec<DashboardQuery>> {
    let mut queries = Vec::new();
    for (dashboard, json) in dashboards(monitoring)? {
        for panel in panels(&json) {
            let targets = panel
                .get("targets")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for target in targets {
                queries.push(DashboardQuery {
                    dashboard: dashboard.clone(),
                    panel_id: panel.get("id").and_then(Value::as_u64).unwrap_or_default(),
                    panel_title: panel
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    ref_id: target
                        .get("refId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    expr: target
                        .get("expr")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
    }
    Ok(queries)
}

/// Every alerting rule (`- alert: Name`) of `monitoring/rules/*.yml`.
pub fn alert_rules(monitoring: &Path) -> Result<Vec<AlertRule>> {
    let mut rules = Vec::new();
    for path in rule_files(monitoring)? {
        for name in alerts(&path)?.into_iter().map(|rule| rule.alert) {
            rules.push(AlertRule {
                file: file_name(&path),
                name,
            });
        }
    }
    Ok(rules)
}

/// The checks, by name, with their outcome.
pub fn checks() -> Vec<super::Check> {
    vec![
        ("monitoring: promtool check config", || {
            with_promtool(check_config)
        }),
        ("monitoring: promtool check rules", || {
            with_promtool(check_rules)
        }),
        ("monitoring: promtool test rules", || {
            with_promtool(test_rules)
        }),
        ("monitoring: Grafana provisioning and dashboards", || {
            check_dashboards(&monitoring_dir())
        }),
        ("monitoring: dashboard queries are valid PromQL", || {
            with_promtool(check_dashboard_promql)
        }),
    ]
}

/// Runs a check that needs promtool (from Debian's prometheus package, installed when missing).
fn with_promtool(check: fn(&Path) -> Result<()>) -> Result<()> {
    tools::ensure_apt(&[("promtool", "prometheus")])?;
    check(&monitoring_dir())
}

/// `promtool check config` on a copy laid out like the launcher's `<data_dir>/prometheus/`.
fn check_config(monitoring: &Path) -> Result<()> {
    let copy = tempfile::tempdir()?;
    fs::copy(
        monitoring.join("prometheus.yml"),
        copy.path().join("prometheus.yml"),
    )?;
    for dir in ["rules", "targets"] {
        copy_dir(&monitoring.join(dir), &copy.path().join(dir))?;
    }
    for job in ["traefik", "users", "images", "inference", "prometheus"] {
        let targets = copy.path().join("targets").join(format!("{job}.json"));
        let text = fs::read_to_string(&targets)
            .with_context(|| format!("targets/{job}.json is missing"))?;
        check_targets(&text).with_context(|| format!("targets/{job}.json"))?;
    }
    // The Swarm's configuration (mounted in place of prometheus.yml there) loads the same way.
    fs::copy(
        monitoring.join("prometheus.swarm.yml"),
        copy.path().join("prometheus.swarm.yml"),
    )?;
    for config in ["prometheus.yml", "prometheus.swarm.yml"] {
        let out = promtool(&["check", "config"], &[copy.path().join(config)])?;
        let rule_files = alert_or_record_files(&out);
        ensure!(rule_files > 0, "{config} loads no rule file:\n{out}");
        ensure!(
            rule_files == rule_files_in(monitoring)?,
            "{config} loads {rule_files} rule files, monitoring/rules has {}:\n{out}",
            rule_files_in(monitoring)?
        );
    }
    Ok(())
}

/// A file_sd targets file: a JSON list of `{targets: [...], labels: {instance: ...}}`.
fn check_targets(text: &str) -> Result<()> {
    let groups: Vec<Value> = serde_json::from_str(text).context("not a JSON list")?;
    ensure!(!groups.is_empty(), "no target group");
    for group in groups {
        let targets = group
            .get("targets")
            .and_then(Value::as_array)
            .context("a group without targets")?;
        ensure!(!targets.is_empty(), "a group with an empty target list");
        let instance = group
            .pointer("/labels/instance")
            .and_then(Value::as_str)
            .unwrap_or_default();
        ensure!(
            !instance.is_empty(),
            "every target group needs a readable `instance` label"
        );
    }
    Ok(())
}

fn alert_or_record_files(promtool_output: &str) -> usize {
    // "  SUCCESS: 4 rule files found"
    promtool_output
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("SUCCESS: ")?
                .strip_suffix(" rule files found")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn rule_files_in(monitoring: &Path) -> Result<usize> {
    Ok(rule_files(monitoring)?.len())
}

fn check_rules(monitoring: &Path) -> Result<()> {
    let files = rule_files(monitoring)?;
    ensure!(!files.is_empty(), "no rule file in monitoring/rules");
    promtool(&["check", "rules"], &files)?;
    for path in &files {
        let alerts = alerts(path)?;
        ensure!(!alerts.is_empty(), "{} defines no alert", path.display());
        // Every rule carries what an operator needs: severity, summary, description, runbook.
        for alert in &alerts {
            let name = &alert.alert;
            ensure!(
                alert.labels.contains_key("severity"),
                "alert {name} in {} has no `severity:`",
                path.display()
            );
            for needed in ["summary", "description", "runbook"] {
                ensure!(
                    alert.annotations.contains_key(needed),
                    "alert {name} in {} has no `{needed}:`",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// `promtool test rules` for every `*_test.yaml`, and each alert tested firing and not firing.
fn test_rules(monitoring: &Path) -> Result<()> {
    for rules in rule_files(monitoring)? {
        let stem = rules
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let tests = rules.with_file_name(format!("{stem}_test.yaml"));
        ensure!(
            tests.exists(),
            "{} has no unit tests beside it ({} is missing)",
            rules.display(),
            tests.display()
        );
        let tested = tested_cases(&fs::read_to_string(&tests)?)
            .with_context(|| format!("reading {}", tests.display()))?;
        for name in alerts(&rules)?.into_iter().map(|rule| rule.alert) {
            let cases = tested.iter().filter(|(alert, _)| *alert == name);
            let (mut firing, mut quiet) = (false, false);
            for (_, fires) in cases {
                firing |= *fires;
                quiet |= !*fires;
            }
            ensure!(
                firing,
                "{} never tests alert {name} firing",
                tests.display()
            );
            ensure!(
                quiet,
                "{} never tests alert {name} not firing",
                tests.display()
            );
        }
        // promtool resolves rule_files relative to the test file.
        promtool(&["test", "rules"], &[tests])?;
    }
    Ok(())
}

/// A promtool rule test file: only what the checks read of it.
#[derive(Deserialize)]
struct RuleTests {
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
struct RuleTest {
    #[serde(default)]
    alert_rule_test: Vec<AlertCase>,
}

#[derive(Deserialize)]
struct AlertCase {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<serde_norway::Value>,
}

/// `(alertname, expects it to fire)` for each `alert_rule_test` case of a promtool test file.
fn tested_cases(text: &str) -> Result<Vec<(String, bool)>> {
    let file: RuleTests = serde_norway::from_str(text)?;
    Ok(file
        .tests
        .into_iter()
        .flat_map(|test| test.alert_rule_test)
        .map(|case| (case.alertname, !case.exp_alerts.is_empty()))
        .collect())
}

/// A Prometheus rule file: its groups of alerting and recording rules.
#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    /// Absent on a recording rule.
    alert: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// An alerting rule of a rule file.
struct Alert {
    alert: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The alerting rules of a rule file, in order.
fn alerts(path: &Path) -> Result<Vec<Alert>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    alerts_in(&text).with_context(|| format!("reading {}", path.display()))
}

fn alerts_in(text: &str) -> Result<Vec<Alert>> {
    let file: RuleFile = serde_norway::from_str(text)?;
    Ok(file
        .groups
        .into_iter()
        .flat_map(|group| group.rules)
        .filter_map(|rule| {
            Some(Alert {
                alert: rule.alert?,
                labels: rule.labels,
                annotations: rule.annotations,
            })
        })
        .collect())
}

/// Grafana's provisioning files: only what the checks read of them.
#[derive(Deserialize)]
struct Datasources {
    datasources: Vec<Datasource>,
}

#[derive(Deserialize)]
struct Datasource {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct DashboardProviders {
    providers: Vec<DashboardProvider>,
}

#[derive(Deserialize)]
struct DashboardProvider {
    #[serde(rename = "type", default)]
    kind: String,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("{} is missing", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

fn check_dashboards(monitoring: &Path) -> Result<()> {
    let provisioning = monitoring.join("grafana/provisioning");
    let datasources: Datasources = read_yaml(&provisioning.join("datasources/prometheus.yml"))?;
    ensure!(
        datasources
            .datasources
            .iter()
            .any(|d| d.uid == DATASOURCE_UID),
        "the provisioned data source must have UID {DATASOURCE_UID}"
    );
    ensure!(
        datasources
            .datasources
            .iter()
            .any(|d| d.url == "http://prometheus:9090"),
        "the provisioned data source must point at http://prometheus:9090"
    );
    let providers: DashboardProviders = read_yaml(&provisioning.join("dashboards/dashboards.yml"))?;
    ensure!(
        providers.providers.iter().any(|p| p.kind == "file"),
        "the dashboard provider must read files"
    );

    let mut uids = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, dashboard) in dashboards(monitoring)? {
        let uid = dashboard
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if uid.is_empty() || !uids.insert(uid.clone()) {
            problems.push(format!(
                "{file}: missing or duplicate dashboard uid {uid:?}"
            ));
        }
        problems.extend(
            dashboard_problems(&dashboard)
                .into_iter()
                .map(|p| format!("{file}: {p}")),
        );
    }
    ensure!(
        problems.is_empty(),
        "dashboard problems:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

/// What is wrong with one dashboard, as sentences.
fn dashboard_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for field in ["title", "uid"] {
        if dashboard
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!("no {field}"));
        }
    }
    if dashboard.get("schemaVersion").and_then(Value::as_u64) != Some(GRAFANA_SCHEMA_VERSION) {
        problems.push(format!(
            "schemaVersion must be {GRAFANA_SCHEMA_VERSION} (Grafana 11.3)"
        ));
    }
    let variables = dashboard
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has_datasource_variable = variables.iter().any(|v| {
        v.get("name").and_then(Value::as_str) == Some("datasource")
            && v.get("type").and_then(Value::as_str) == Some("datasource")
            && v.get("query").and_then(Value::as_str) == Some("prometheus")
    });
    if !has_datasource_variable {
        problems
            .push("no `datasource` template variable of type datasource for prometheus".to_owned());
    }

    let mut ids = BTreeSet::new();
    let all = panels(dashboard);
    if all.is_empty() {
        problems.push("no panel".to_owned());
    }
    for panel in all {
        let id = panel.get("id").and_then(Value::as_u64);
        let title = panel
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = format!(
            "panel {} \"{title}\"",
            id.map_or("?".to_owned(), |id| id.to_string())
        );
        match id {
            Some(id) if ids.insert(id) => {}
            _ => problems.push(format!("{name}: missing or duplicate id")),
        }
        if title.is_empty() {
            problems.push(format!("{name}: no title"));
        }
        problems.extend(
            grid_problems(panel)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        if panel.get("type").and_then(Value::as_str) == Some("row") {
            continue;
        }
        if !uses_datasource_variable(panel.get("datasource")) {
            problems.push(format!("{name}: datasource must be {{\"type\": \"prometheus\", \"uid\": \"{DATASOURCE_VARIABLE}\"}}"));
        }
        let targets = panel
            .get("targets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{name}: no query"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target
                .get("refId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problems.push(format!("{name}: missing or duplicate refId {ref_id:?}"));
            }
            if target
                .get("expr")
                .and_then(Value::as_str)
                .is_none_or(|e| e.trim().is_empty())
            {
                problems.push(format!("{name} query {ref_id}: empty expr"));
            }
            if !uses_datasource_variable(target.get("datasource")) {
                problems.push(format!(
                    "{name} query {ref_id}: datasource must use {DATASOURCE_VARIABLE}"
                ));
            }
        }
    }
    problems
}

fn grid_problems(panel: &Value) -> Vec<String> {
    let field = |name: &str| {
        panel
            .pointer(&format!("/gridPos/{name}"))
            .and_then(Value::as_u64)
    };
    match (field("x"), field("y"), field("w"), field("h")) {
        (Some(x), Some(_), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= 24 => Vec::new(),
        _ => vec!["gridPos must have x, y, w > 0, h > 0 and fit in 24 columns".to_owned()],
    }
}

fn uses_datasource_variable(datasource: Option<&Value>) -> bool {
    datasource.is_some_and(|d| {
        d.get("type").and_then(Value::as_str) == Some("prometheus")
            && d.get("uid").and_then(Value::as_str) == Some(DATASOURCE_VARIABLE)
    })
}

/// Every panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    for panel in dashboard
        .get("panels")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        found.push(panel);
        if let Some(nested) = panel.get("panels").and_then(Value::as_array) {
            found.extend(nested);
        }
    }
    found
}

/// Parses every dashboard expression with promtool: each becomes a recording rule of a
/// throwaway rule file, which `promtool check rules` parses with Prometheus's own parser.
fn check_dashboard_promql(monitoring: &Path) -> Result<()> {
    let queries = dashboard_queries(monitoring)?;
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    for query in &queries {
        let promql =
            grafana_to_promql(&query.expr, "1m", "15m").with_context(|| query.location())?;
        // The rule name says where a parse error is: dashboard:<file>:panel_<id>_<refId>.
        let dashboard = query
            .dashboard
            .trim_end_matches(".json")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        // A JSON string is a valid YAML double-quoted scalar.
        writeln!(
            rules,
            "      - record: dashboard:{dashboard}:panel_{}_{}\n        expr: {}",
            query.panel_id,
            query.ref_id,
            serde_json::to_string(&promql)?
        )?;
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("dashboard-queries.yml");
    fs::write(&file, rules)?;
    promtool(&["check", "rules"], &[file]).context("a dashboard query is not valid PromQL")?;
    Ok(())
}

fn promtool(args: &[&str], files: &[PathBuf]) -> Result<String> {
    let out = Command::new("promtool")
        .args(args)
        .args(files)
        .output()
        .context("cannot run promtool (Debian package prometheus)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("promtool {} failed:\n{text}", args.join(" "));
    }
    Ok(text)
}

/// `monitoring/rules/*.yml`: the files `rule_files: [rules/*.yml]` loads (tests are `*.yaml`).
fn rule_files(monitoring: &Path) -> Result<Vec<PathBuf>> {
    files_with_extension(&monitoring.join("rules"), "yml")
}

fn files_with_extension(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        if path.is_file() {
            fs::copy(&path, to.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_interval_variables_become_promql_durations() {
        let promql = grafana_to_promql(
            "rate(x[$__rate_interval]) + increase(y[$__range]) / $__range_s",
            "1m",
            "15m",
        )
        .expect("known variables");
        assert_eq!(promql, "rate(x[1m]) + increase(y[15m]) / 900");
    }

    #[test]
    fn an_unknown_grafana_variable_is_refused() {
        assert!(grafana_to_promql("rate(x{service=\"$service\"}[1m])", "1m", "15m").is_err());
    }

    #[test]
    fn test_cases_are_read_as_firing_or_not() {
        let text = "
rule_files: [a.yml]
tests:
  - interval: 1m
    alert_rule_test:
      - eval_time: 3m
        alertname: A
        exp_alerts: []
      - eval_time: 10m
        alertname: A
        exp_alerts:
          - exp_labels: { severity: warning }
";
        assert_eq!(
            tested_cases(text).expect("a test file"),
            vec![("A".to_owned(), false), ("A".to_owned(), true)]
        );
    }

    #[test]
    fn every_rule_file_of_the_repository_and_its_tests_are_read() {
        let monitoring = monitoring_dir();
        for rules in rule_files(&monitoring).expect("rule files") {
            assert!(!alerts(&rules).expect("a rule file").is_empty());
            let tests = rules.with_file_name(format!(
                "{}_test.yaml",
                rules
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
            ));
            let text = fs::read_to_string(&tests).expect("a test file");
            assert!(!tested_cases(&text).expect("a test file").is_empty());
        }
    }

    #[test]
    fn alerts_are_read_with_their_labels_and_recording_rules_are_not() {
        let text = "
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum(up)
      - alert: Down
        expr: up == 0
        labels: { severity: critical }
        annotations: { summary: s }
";
        let alerts = alerts_in(text).expect("a rule file");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert, "Down");
        assert_eq!(alerts[0].labels["severity"], "critical");
        assert!(!alerts[0].annotations.contains_key("runbook"));
    }

    #[test]
    fn a_panel_with_a_hard_coded_datasource_is_reported() {
        let dashboard = serde_json::json!({
            "uid": "d", "title": "D", "schemaVersion": GRAFANA_SCHEMA_VERSION,
            "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
            "panels": [{"id": 1, "type": "timeseries", "title": "P", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                        "datasource": "Prometheus",
                        "targets": [{"refId": "A", "expr": "up", "datasource": {"type": "prometheus", "uid": "${datasource}"}}]}]
        });
        let problems = dashboard_problems(&dashboard);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("datasource"), "{problems:?}");
    }
}
