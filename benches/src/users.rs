//! Login and `GET /me`: login latency at the configured argon2 cost (19 MiB, t=2, p=1 unless
//! overridden) and logins per second per core, against the hash time the replicas report
//! themselves (`users_argon2_seconds`); `GET /me` requests per second at concurrency 32.
//!
//! Baseline choice: xtask does not link argon2, and a hash timed in another process would not be
//! the hash the service ran. The service times every hash it runs. Logins one at a time give the
//! uncontended hash time (one hash on an otherwise idle core), and `1 / that time` is the most
//! logins one core could do if a login were nothing but its hash. The ratio of the measured
//! per-core rate under concurrent load to it is the share of the machine's CPU that turns into
//! logins (1.0 = the rest of the request and the gateway cost nothing). Under concurrent load the
//! histogram's wall-clock times include waiting for a core, so they are reported but not used as
//! the baseline.

use anyhow::Result;

use super::{
    gateway,
    oha::{Limit, Load},
    prom::{self, histogram_delta},
    report::{LoadResult, PartReport},
    Bench, Live, Part, PASSWORD,
};
use xtask::stack::USERS_NAMES;

const LOGIN_ONE: &str = "POST /login via Traefik, one at a time";
const LOGIN: &str = "POST /login via Traefik (round robin over 3 replicas)";
/// Logins sent at once under load: two per core keeps every core hashing.
fn login_concurrency(bench: &Bench) -> u32 {
    (bench.cores as u32 * 2).max(2)
}

/// Runs `load` with `bench.measure` and returns it with the argon2 histogram growth over the
/// three replicas during it.
fn with_hash_times(
    bench: &Bench,
    live: &Live,
    name: &str,
    load: &Load,
) -> Result<(LoadResult, prom::Histogram)> {
    let replicas = &live.ports().users[..3];
    let scrape_all = || -> Result<Vec<prom::Scrape>> {
        replicas.iter().map(|port| live.metrics(*port)).collect()
    };
    let before = scrape_all()?;
    let result = bench.measure(name, load)?;
    // Every login must succeed: refused ones (a limiter) would be timed as fast logins.
    if let Some(run) = result.runs.iter().find(|r| r.ok < r.answered + r.errors) {
        anyhow::bail!(
            "{name}: {} of {} logins succeeded; the benchmark measures successful logins only",
            run.ok,
            run.answered + run.errors
        );
    }
    let after = scrape_all()?;
    let mut hash = prom::Histogram::default();
    for (b, a) in before.iter().zip(&after) {
        let h = histogram_delta(b, a, "users_argon2_seconds", &[]);
        hash.count += h.count;
        hash.sum += h.sum;
        if hash.buckets.is_empty() {
            hash.buckets = h.buckets;
        } else {
            for (slot, (_, n)) in hash.buckets.iter_mut().zip(h.buckets) {
                slot.1 += n;
            }
        }
    }
    Ok((result, hash))
}

/// Logins one at a time and under load, each with the hash times the replicas reported.
struct Logins {
    concurrency: u32,
    one: LoadResult,
    alone: prom::Histogram,
    loaded: LoadResult,
    contended: prom::Histogram,
}

pub fn run(bench: &Bench, live: &Live, me_at_32: Option<LoadResult>) -> Result<PartReport> {
    let mut part = super::new_part(Part::Users, "Users: login and GET /me");
    let logins = measure_logins(bench, live)?;
    login_figures(&mut part, bench, &logins);
    part.loads.push(logins.one);
    part.loads.push(logins.loaded);

    let me = match me_at_32 {
        Some(me) => me,
        None => bench.measure(gateway::ME_VIA_GATEWAY, &gateway::me_via_gateway(live))?,
    };
    part.figure(
        "`GET /me` at concurrency 32 via gateway",
        me.median.ok_per_sec,
        "req/s",
        &format!(
            "2xx/s, {} cores; see the gateway part for the direct baseline",
            bench.cores
        ),
    );
    part.loads.push(me);
    part.note(format!(
        "argon2id cost: the service defaults (docs/configuration.md: 19456 KiB, t=2, p=1), at most \
         `ARGON2_MAX_CONCURRENT` = cores hashes at once per replica; {} replicas share {} cores. \
         Login rate limits are raised for the benchmark only.",
        USERS_NAMES.len() - 1,
        bench.cores
    ));
    Ok(part)
}

fn measure_logins(bench: &Bench, live: &Live) -> Result<Logins> {
    let body = bench.scratch("login.json");
    std::fs::write(
        &body,
        serde_json::json!({"username": "bench", "password": PASSWORD}).to_string(),
    )?;
    let login = |concurrency: u32, requests: u64| {
        Load::post(
            live.web("/login"),
            &body,
            "application/json",
            concurrency,
            Limit::Requests(requests),
        )
        .header("Host", "users.localhost")
    };
    let concurrency = login_concurrency(bench);
    let (one, alone) = with_hash_times(bench, live, LOGIN_ONE, &login(1, 20))?;
    let (loaded, contended) = with_hash_times(
        bench,
        live,
        LOGIN,
        &login(concurrency, 20 * u64::from(concurrency)),
    )?;
    Ok(Logins {
        concurrency,
        one,
        alone,
        loaded,
        contended,
    })
}

fn login_figures(part: &mut PartReport, bench: &Bench, logins: &Logins) {
    let concurrency = logins.concurrency;
    let hash_ms = logins.alone.mean() * 1000.0;
    let (o, l) = (&logins.one.median, &logins.loaded.median);
    let per_core = l.ok_per_sec / bench.cores as f64;
    part.figure(
        "login p50, one at a time",
        o.p50_ms,
        "ms",
        "oha c=1, median of runs",
    );
    part.figure(
        "login p99, one at a time",
        o.p99_ms,
        "ms",
        "oha c=1, median of runs",
    );
    part.figure(
        &format!("login p50 at c={concurrency}"),
        l.p50_ms,
        "ms",
        "oha, median of runs",
    );
    part.figure(
        &format!("login p99 at c={concurrency}"),
        l.p99_ms,
        "ms",
        "oha, median of runs",
    );
    part.figure(
        "logins/s per core",
        per_core,
        "1/s",
        &format!("2xx/s at c={concurrency} ÷ {} cores", bench.cores),
    );
    part.figure(
        "argon2id hash, uncontended, mean",
        hash_ms,
        "ms",
        &format!(
            "`users_argon2_seconds` growth over {} one-at-a-time logins",
            logins.alone.count
        ),
    );
    part.figure(
        &format!("argon2id hash wall time at c={concurrency}, mean"),
        logins.contended.mean() * 1000.0,
        "ms",
        "includes waiting for a core: 3 replicas × `ARGON2_MAX_CONCURRENT` hashes share the cores",
    );
    part.compare(
        "logins/s per core",
        per_core,
        "1 / uncontended hash time",
        1000.0 / hash_ms,
        "1/s",
        "share of CPU that becomes logins (1.0 = only the hash costs)",
    );
    part.compare(
        "login p50, one at a time",
        o.p50_ms,
        "uncontended hash time",
        hash_ms,
        "ms",
        "login latency in hash times (HTTP, gateway, database, token signing on top)",
    );
}
