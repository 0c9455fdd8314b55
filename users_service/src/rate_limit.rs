//! Login throttling per client IP and per username, registration throttling per client IP
//! (`governor`), and who the client is.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy (the gateway): then it is the
//! right-most `X-Forwarded-For` entry, the one that proxy itself appended. Entries further left
//! were written by the client and could be forged.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{extract::ConnectInfo, http::HeaderMap};
use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use ipnet::IpNet;

/// How often (in checks) idle keys are dropped so the limiter's memory stays bounded.
const PRUNE_EVERY: u64 = 4096;

/// Keyed limiters: login attempts per client IP and per (lower-cased) username, registrations
/// per client IP. Each is checked before any password is hashed.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<String>,
    register_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
    clock: DefaultClock,
}

impl LoginLimiter {
    pub fn new(
        per_ip_per_minute: NonZeroU32,
        per_user_per_minute: NonZeroU32,
        registrations_per_ip_per_minute: NonZeroU32,
    ) -> Self {
        Self {
            per_ip: RateLimiter::keyed(Quota::per_minute(per_ip_per_minute)),
            per_user: RateLimiter::keyed(Quota::per_minute(per_user_per_minute)),
            register_per_ip: RateLimiter::keyed(Quota::per_minute(registrations_per_ip_per_minute)),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    fn prune_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.per_ip.retain_recent();
            self.per_user.retain_recent();
            self.register_per_ip.retain_recent();
            self.per_ip.shrink_to_fit();
            self.per_user.shrink_to_fit();
            self.register_per_ip.shrink_to_fit();
        }
    }

    fn retry_after(&self, not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        let wait = not_until.wait_time_from(self.clock.now());
        // Round up: retrying after the advertised seconds must succeed.
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    }

    /// `Err(seconds to wait)` when this IP has used up its attempts.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.prune_now_and_then();
        self.per_ip.check_key(&ip).map_err(|n| self.retry_after(&n))
    }

    /// `Err(seconds to wait)` when this IP has used up its registrations.
    pub fn check_register_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.prune_now_and_then();
        self.register_per_ip
            .check_key(&ip)
            .map_err(|n| self.retry_after(&n))
    }

    /// `Err(seconds to wait)` when this username has used up its attempts.
    pub fn check_user(&self, username: &str) -> Result<(), u64> {
        // Bounded key length: a huge made-up username must not cost memory.
        let key: String = username.chars().take(64).collect::<String>().to_lowercase();
        self.per_user
            .check_key(&key)
            .map_err(|n| self.retry_after(&n))
    }
}

/// The client's IP address for a request.
pub fn client_ip(
    connect_info: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> IpAddr {
    let Some(ConnectInfo(peer)) = connect_info else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let peer = peer.ip().to_canonical();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()
        .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn trusted() -> Vec<IpNet> {
        crate::config::parse_cidrs("T", "127.0.0.0/8,::1/128").expect("cidrs")
    }

    fn peer(ip: &str) -> ConnectInfo<SocketAddr> {
        ConnectInfo(SocketAddr::new(ip.parse().expect("ip"), 40_000))
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        headers
    }

    #[test]
    fn the_attempt_after_the_quota_is_refused_with_a_wait_in_whole_seconds() {
        let limiter = LoginLimiter::new(nz(2), nz(100), nz(100));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(limiter.check_ip(ip).is_ok());
        assert!(limiter.check_ip(ip).is_ok());
        let wait = limiter.check_ip(ip).expect_err("third attempt");
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(
            limiter.check_ip("10.0.0.2".parse().expect("ip")).is_ok(),
            "other IPs are unaffected"
        );
    }

    #[test]
    fn registrations_are_limited_apart_from_logins() {
        let limiter = LoginLimiter::new(nz(100), nz(100), nz(1));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(limiter.check_register_ip(ip).is_ok());
        assert!(limiter.check_register_ip(ip).is_err());
        assert!(limiter.check_ip(ip).is_ok(), "logins keep their own quota");
    }

    #[test]
    fn usernames_are_limited_case_insensitively() {
        let limiter = LoginLimiter::new(nz(100), nz(1), nz(100));
        assert!(limiter.check_user("Alice").is_ok());
        assert!(limiter.check_user("alice").is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let ip = client_ip(
            Some(&peer("203.0.113.9")),
            &forwarded(&["1.2.3.4"]),
            &trusted(),
        );
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_forwarded_entry_is_the_client() {
        let ip = client_ip(
            Some(&peer("127.0.0.1")),
            &forwarded(&["6.6.6.6, 198.51.100.7", "192.0.2.1"]),
            &trusted(),
        );
        assert_eq!(ip, "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn a_trusted_proxy_without_a_usable_header_is_the_client() {
        let ip = client_ip(Some(&peer("::1")), &forwarded(&["not-an-ip"]), &trusted());
        assert_eq!(ip, "::1".parse::<IpAddr>().expect("ip"));
    }
}
