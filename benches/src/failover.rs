//! Failover under overload: a login storm through the gateway against replicas that accept only
//! a few requests at once (`MAX_IN_FLIGHT`), so they shed with 503 and Traefik replays the
//! request on users-backup. oha cannot see `X-Served-By`, so who answered comes from each
//! instance's own `http_requests_total` growth, per `server`.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{
    oha::{Limit, Load, RunStats},
    prom,
    report::PartReport,
    Bench, Live, Part, PASSWORD,
};
use xtask::stack::USERS_NAMES;

/// In-flight requests each of the three replicas accepts; the backup keeps the default.
const REPLICA_MAX_IN_FLIGHT: &str = "1";
const CONCURRENCY: u32 = 16;
const REQUESTS: u64 = 160;
const STORM: &str = "POST /login storm via Traefik, replicas at MAX_IN_FLIGHT=1";

pub fn run(bench: &Bench) -> Result<PartReport> {
    let mut part = super::new_part(
        Part::Failover,
        "Failover: login storm with saturated replicas",
    );
    let mut overrides = super::base_overrides();
    for name in &USERS_NAMES[..3] {
        if let Some(env) = overrides.get_mut(*name) {
            env.insert("MAX_IN_FLIGHT".into(), REPLICA_MAX_IN_FLIGHT.into());
        }
    }
    let live = bench.start_stack(overrides, false)?;
    let storm = storm(bench, &live)?;
    let mut runs = Vec::new();
    let mut shares: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut shed_total = 0.0;

    for run in 1..=bench.runs {
        runs.push(storm_run(
            bench,
            &live,
            (&storm, run),
            &mut shares,
            &mut shed_total,
        )?);
    }
    for (name, values) in &shares {
        let what = if *name == "failed" {
            "share of requests not answered 2xx (oha)".to_owned()
        } else {
            format!("share of requests answered 2xx by {name} (`http_requests_total` growth)")
        };
        part.figure(
            &format!("{name} share"),
            super::stats::median(values.iter().copied()) * 100.0,
            "%",
            &what,
        );
    }
    part.figure(
        "requests shed by replicas",
        shed_total / f64::from(bench.runs),
        "per run",
        "`http_requests_shed_total` growth over all four instances",
    );
    part.loads.push(super::report::LoadResult {
        scenario: STORM.into(),
        concurrency: CONCURRENCY,
        median: super::oha::median_stats(&runs),
        runs,
    });
    part.note(format!(
        "{REQUESTS} logins per run at concurrency {CONCURRENCY}; users-1..3 accept {REPLICA_MAX_IN_FLIGHT} request(s) at once \
         and answer 503 beyond it, which Traefik's failover service replays on users-backup."
    ));
    Ok(part)
}

/// The login storm: `REQUESTS` logins of the benchmark user, `CONCURRENCY` at a time.
fn storm(bench: &Bench, live: &Live) -> Result<Load> {
    let body = bench.scratch("failover-login.json");
    std::fs::write(
        &body,
        serde_json::json!({"username": "bench", "password": PASSWORD}).to_string(),
    )?;
    Ok(Load::post(
        live.web("/login"),
        &body,
        "application/json",
        CONCURRENCY,
        Limit::Requests(REQUESTS),
    )
    .header("Host", "users.localhost"))
}

/// Storm number `run`; adds each instance's share of 2xx answers, the failed share and the shed requests.
fn storm_run(
    bench: &Bench,
    live: &Live,
    (storm, run): (&Load, u32),
    shares: &mut BTreeMap<&str, Vec<f64>>,
    shed_total: &mut f64,
) -> Result<RunStats> {
    let scrape_all = || -> Result<Vec<prom::Scrape>> {
        live.ports()
            .users
            .iter()
            .map(|p| live.metrics(*p))
            .collect()
    };
    let before = scrape_all()?;
    let stats = storm.run(&bench.oha)?;
    let after = scrape_all()?;
    super::progress(STORM, run, bench.runs, &stats);
    let sent = (stats.answered + stats.errors) as f64;
    let mut line = Vec::new();
    for (i, name) in USERS_NAMES.iter().enumerate() {
        let ok = |s: &prom::Scrape| {
            s.sum(
                "http_requests_total",
                &[("route", "/login"), ("status", "2xx")],
            )
        };
        let answered = ok(&after[i]) - ok(&before[i]);
        *shed_total += after[i].sum("http_requests_shed_total", &[])
            - before[i].sum("http_requests_shed_total", &[]);
        shares.entry(name).or_default().push(answered / sent);
        line.push(format!("{name} {answered:.0}"));
    }
    shares
        .entry("failed")
        .or_default()
        .push(1.0 - stats.ok_share());
    eprintln!("    2xx by server: {}", line.join(", "));
    Ok(stats)
}
