//! Gateway overhead: `GET /me` through Traefik (the authenticated router and group; the replica
//! verifies the token) against the same request straight to one replica, and Traefik in front of
//! nginx's static page as the floor of what any request through the gateway costs.

use anyhow::Result;

use super::{
    oha::{Limit, Load},
    report::PartReport,
    Bench, Live, Part,
};

pub const ME_VIA_GATEWAY: &str = "GET /me via Traefik (authenticated group)";
pub const ME_DIRECT: &str = "GET /me direct to users-2";
pub const FLOOR: &str = "GET / via Traefik to nginx (error.localhost)";
/// Concurrency of every scenario here (the issue asks for `GET /me` at 32).
pub const CONCURRENCY: u32 = 32;
/// Seconds per run: long enough for thousands of requests, short enough for the 10-minute budget.
const SECONDS: u64 = 5;

/// `GET /me` through the gateway at concurrency 32.
pub fn me_via_gateway(live: &Live) -> Load {
    Load::get(live.web("/me"), CONCURRENCY, Limit::Seconds(SECONDS))
        .header("Host", "users.localhost")
        .header("Authorization", &live.bearer())
}

/// `GET /me` straight to users-2 with the same token: no gateway.
pub fn me_direct(live: &Live) -> Load {
    Load::get(
        format!("http://127.0.0.1:{}/me", live.ports().users[1]),
        CONCURRENCY,
        Limit::Seconds(SECONDS),
    )
    .header("Authorization", &live.bearer())
}

/// Traefik in front of nginx's static page: the cheapest request through the gateway.
pub fn floor(live: &Live) -> Load {
    Load::get(live.web("/"), CONCURRENCY, Limit::Seconds(SECONDS))
        .header("Host", "error.localhost")
        .header("Accept", "application/json")
}

pub fn run(bench: &Bench, live: &Live) -> Result<PartReport> {
    let mut part = super::new_part(Part::Gateway, "Gateway overhead (Traefik)");
    let via = bench.measure(ME_VIA_GATEWAY, &me_via_gateway(live))?;
    let direct = bench.measure(ME_DIRECT, &me_direct(live))?;
    let floor = bench.measure(FLOOR, &floor(live))?;

    let (v, d, f) = (&via.median, &direct.median, &floor.median);
    part.compare(
        "`GET /me` throughput via gateway",
        v.ok_per_sec,
        "direct to users-2",
        d.ok_per_sec,
        "req/s",
        "share of a replica's throughput left through the gateway",
    );
    part.compare(
        "`GET /me` p50 via gateway",
        v.p50_ms,
        "direct to users-2",
        d.p50_ms,
        "ms",
        "latency multiple at the median",
    );
    part.compare(
        "`GET /me` p99 via gateway",
        v.p99_ms,
        "direct to users-2",
        d.p99_ms,
        "ms",
        "latency multiple at the tail",
    );
    part.compare(
        "`GET /me` throughput via gateway",
        v.ok_per_sec,
        "Traefik → nginx static page",
        f.ok_per_sec,
        "req/s",
        "goal ≥ 0.6: an authenticated request through the gateway against the gateway's own floor",
    );
    part.compare(
        "`GET /me` p50 via gateway",
        v.p50_ms,
        "Traefik → nginx static page",
        f.p50_ms,
        "ms",
        "cost of auth + routing + the service over the cheapest request through Traefik",
    );
    part.compare(
        "Traefik → nginx throughput",
        f.ok_per_sec,
        "direct to users-2",
        d.ok_per_sec,
        "req/s",
        "the gateway's own ceiling relative to one replica",
    );
    part.loads = vec![via, direct, floor];
    part.note(format!(
        "Concurrency {CONCURRENCY}, {SECONDS} s per run. oha, Traefik, nginx and the services share the machine's {} cores, \
         so req/s is what the whole box sustains, not one component alone.",
        bench.cores
    ));
    part.note("The direct scenario reaches users-2 with the same Bearer token and skips Traefik.");
    Ok(part)
}
