//! Login and `GET /me`: login latency at the configured argon2 cost (19 MiB, t=2, p=1 unless
//! overridden) and logins per second per core, against the hash time the replicas report
//! themselves (`users_argon2_seconds`); `GET /me` requests per second at concurrency 32.
//!
//! Baseline choice: xtask does not link argon2, and a hash timed in another process on a busy
//! 2-core machine would not be the hash the service ran. The service times every hash it runs;
//! the growth of that histogram over the login runs is the in-process hash time under the same
//! load, and `1 / mean hash time` is the most logins one core could do if login were nothing but
//! the hash. The ratio of the measured per-core rate to it is the share of CPU that goes to the
//! hash (1.0 = the rest of the request costs nothing).

use anyhow::Result;

use super::{
    gateway,
    oha::{Limit, Load},
    prom::{self, histogram_delta},
    report::{LoadResult, PartReport},
    Bench, Live, Part, PASSWORD,
};
use crate::stack::USERS_NAMES;

const LOGIN: &str = "POST /login via Traefik (round robin over 3 replicas)";
/// Logins sent at once: two per core keeps every core hashing without queueing much.
fn login_concurrency(bench: &Bench) -> u32 {
    (bench.cores as u32 * 2).max(2)
}

pub fn run(bench: &Bench, live: &Live, me_at_32: Option<LoadResult>) -> Result<PartReport> {
    let mut part = super::new_part(Part::Users, "Users: login and GET /me");
    let body = bench.scratch("login.json");
    std::fs::write(
        &body,
        serde_json::json!({"username": "bench", "password": PASSWORD}).to_string(),
    )?;
    let concurrency = login_concurrency(bench);
    let replicas = &live.ports().users[..3];
    let scrape_all = || -> Result<Vec<prom::Scrape>> {
        replicas.iter().map(|port| live.metrics(*port)).collect()
    };

    let before = scrape_all()?;
    let login = bench.measure(
        LOGIN,
        &Load::post(
            live.web("/login"),
            &body,
            "application/json",
            concurrency,
            Limit::Requests(20 * u64::from(concurrency)),
        )
        .header("Host", "users.localhost"),
    )?;
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
    let hash_ms = hash.mean() * 1000.0;
    let l = &login.median;
    let per_core = l.ok_per_sec / bench.cores as f64;
    part.figure("login p50", l.p50_ms, "ms", "oha, median of runs");
    part.figure("login p99", l.p99_ms, "ms", "oha, median of runs");
    part.figure(
        "logins/s per core",
        per_core,
        "1/s",
        &format!("2xx/s ÷ {} cores", bench.cores),
    );
    part.figure(
        "argon2id hash inside the service, mean",
        hash_ms,
        "ms",
        &format!(
            "`users_argon2_seconds` growth over {} hashes (warm-up included)",
            hash.count
        ),
    );
    part.figure(
        "argon2id hash inside the service, p99",
        hash.quantile(0.99) * 1000.0,
        "ms",
        "bucket-interpolated from the histogram",
    );
    part.compare(
        "logins/s per core",
        per_core,
        "1 / mean hash time",
        1000.0 / hash_ms,
        "1/s",
        "share of a core's time that is the password hash (1.0 = nothing else costs)",
    );
    part.compare(
        "login p50",
        l.p50_ms,
        "mean hash time",
        hash_ms,
        "ms",
        "login latency in hash times (queueing behind other hashes + HTTP + token signing)",
    );
    part.loads.push(login);

    let me = match me_at_32 {
        Some(me) => me,
        None => bench.measure(gateway::ME_VIA_GATEWAY, &gateway::me_via_gateway(live))?,
    };
    part.figure(
        "`GET /me` at concurrency 32 via gateway",
        me.median.ok_per_sec,
        "req/s",
        &format!(
            "{} cores; see the gateway part for the direct baseline",
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
