//! Access tokens revoked before their `exp`: the sessions (claim `sid`) ended by logout, by reuse
//! of a rotated refresh token, or by an admin disabling the account (every session of it). Tokens
//! without a `sid`, signed before sessions were claimed, are revoked by subject: every such token
//! of the account issued up to the revocation.
//!
//! users_service records each revocation and serves the live ones at
//! `GET /internal/revocations?since=MICROS`; a [`RevocationList`] polls that feed in the background
//! and answers on the request path from memory, with two hash lookups. When the feed cannot be
//! fetched for longer than its staleness bound, the list *fails closed*: [`RevocationList::check`]
//! refuses every token with [`AuthError::RevocationsUnavailable`] (503), because a list that has
//! silently stopped updating would let a revoked token work until it expires.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, Weak},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthError, Claims};

/// One revocation as users_service serves it. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    /// The account whose tokens are revoked.
    pub sub: Uuid,
    /// The session (refresh-token family) whose tokens are revoked; absent when every token of
    /// `sub` without a session, issued up to `revoked_at`, is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the revocation was recorded (µs).
    pub revoked_at: i64,
    /// After this (µs) every token it concerns has expired, so it can be forgotten.
    pub expires_at: i64,
}

/// The body of `GET /internal/revocations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationFeed {
    /// Revocations recorded at or after `since`, still live, oldest first.
    pub revocations: Vec<Revocation>,
}

/// How far before the newest revocation seen the next poll asks from: a revocation whose
/// transaction committed late, or that another replica stamped with a slightly slower clock, is
/// still picked up. Entries are idempotent, so the overlap only costs a few repeated rows.
const POLL_OVERLAP_MICROS: i64 = 60 * 1_000_000;

/// How long one URL may take to answer before the next is tried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a [`RevocationList`] gets its revocations and how fresh it must stay.
#[derive(Debug, Clone)]
pub struct RevocationSource {
    /// Feed URLs (`…/internal/revocations`), tried in order until one answers.
    pub urls: Vec<String>,
    /// Time between two polls.
    pub poll_interval: Duration,
    /// After this long without a successful poll every token is refused (503).
    pub max_staleness: Duration,
}

#[derive(Default)]
struct Entries {
    /// Revoked session ids → when the entry can be forgotten (µs).
    sessions: HashMap<String, i64>,
    /// Subjects → (their tokens without a `sid` with `iat` up to this are revoked (µs), when the
    /// entry can be forgotten).
    subjects: HashMap<Uuid, (i64, i64)>,
    /// The newest `revoked_at` seen (µs).
    newest: Option<i64>,
    /// When the feed last answered.
    fresh_at: Option<Instant>,
}

/// The revocations a verifier checks every token against, kept in memory.
pub struct RevocationList {
    entries: RwLock<Entries>,
    source: Option<(RevocationSource, reqwest::Client)>,
}

fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    i64::try_from(now).unwrap_or(i64::MAX)
}

impl RevocationList {
    /// A list nobody feeds: users_service, which checks its own database, and tests.
    pub fn unfed() -> Self {
        Self {
            entries: RwLock::new(Entries::default()),
            source: None,
        }
    }

    /// A list fed from `source` by [`RevocationList::spawn_polling`].
    pub fn fed_from(source: RevocationSource) -> Self {
        // A fetch must end well within the staleness bound, so one hung replica cannot stall
        // the list while the next URL would have answered.
        let timeout = FETCH_TIMEOUT.min(source.max_staleness / 2);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            entries: RwLock::new(Entries::default()),
            source: Some((source, client)),
        }
    }

    /// Refuses `claims` if their session or subject is revoked, or if the list is too stale to
    /// tell. Two hash lookups under a read lock; no I/O.
    pub fn check(&self, claims: &Claims) -> Result<(), AuthError> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if let Some((source, _)) = &self.source {
            let fresh = entries
                .fresh_at
                .is_some_and(|t| t.elapsed() <= source.max_staleness);
            if !fresh {
                return Err(AuthError::RevocationsUnavailable);
            }
        }
        let revoked = match &claims.sid {
            Some(sid) => entries.sessions.contains_key(sid),
            None => entries
                .subjects
                .get(&claims.sub)
                .is_some_and(|(before, _)| claims.iat.saturating_mul(1_000_000) <= *before),
        };
        if revoked {
            return Err(AuthError::Revoked);
        }
        Ok(())
    }

    /// Adds `revocations` and forgets every entry whose tokens have all expired.
    pub fn apply(&self, revocations: &[Revocation]) {
        let now = now_micros();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for r in revocations.iter().filter(|r| r.expires_at > now) {
            match &r.sid {
                Some(sid) => {
                    let until = entries.sessions.entry(sid.clone()).or_insert(r.expires_at);
                    *until = (*until).max(r.expires_at);
                }
                None => {
                    let entry = entries
                        .subjects
                        .entry(r.sub)
                        .or_insert((r.revoked_at, r.expires_at));
                    *entry = (entry.0.max(r.revoked_at), entry.1.max(r.expires_at));
                }
            }
            entries.newest = Some(entries.newest.unwrap_or(i64::MIN).max(r.revoked_at));
        }
        entries.sessions.retain(|_, until| *until > now);
        entries.subjects.retain(|_, (_, until)| *until > now);
    }

    /// For the services' `/readyz`: an error while the list is too stale to check a token (every
    /// token then gets 503), so that the gateway and the orchestrator see it too.
    pub fn readiness(&self) -> Result<(), String> {
        let Some((source, _)) = &self.source else {
            return Ok(());
        };
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.fresh_at {
            Some(t) if t.elapsed() <= source.max_staleness => Ok(()),
            Some(t) => Err(format!(
                "the revocation feed has not answered for {:.0} s",
                t.elapsed().as_secs_f64()
            )),
            None => Err("the revocation feed has not answered yet".to_owned()),
        }
    }

    /// How many sessions and subjects are revoked now.
    pub fn len(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.sessions.len() + entries.subjects.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fetches the feed once (from the first URL that answers) and applies it. Services call it
    /// at start; the polling task calls it every interval.
    pub async fn poll(&self) -> anyhow::Result<usize> {
        let Some((source, client)) = &self.source else {
            return Ok(0);
        };
        let since = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .newest
            .map(|t| t.saturating_sub(POLL_OVERLAP_MICROS));
        let mut last_error = anyhow::anyhow!("no revocation URL configured");
        for url in &source.urls {
            let mut request = client.get(url);
            if let Some(since) = since {
                request = request.query(&[("since", since)]);
            }
            match fetch(request).await {
                Ok(feed) => {
                    self.apply(&feed.revocations);
                    self.entries
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .fresh_at = Some(Instant::now());
                    return Ok(feed.revocations.len());
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "cannot fetch revocations");
                    last_error = e.context(url.clone());
                }
            }
        }
        Err(last_error)
    }

    /// Polls the feed every interval for as long as the list is alive.
    pub fn spawn_polling(self: &Arc<Self>) {
        let Some((source, _)) = &self.source else {
            return;
        };
        let interval = source.poll_interval;
        let list: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticks.tick().await;
                let Some(list) = list.upgrade() else { return };
                match list.poll().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("revocations fetched again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "cannot fetch revocations from any URL"
                        );
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

async fn fetch(request: reqwest::RequestBuilder) -> anyhow::Result<RevocationFeed> {
    Ok(request.send().await?.error_for_status()?.json().await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, DEFAULT_AUDIENCE, DEFAULT_ISSUER};

    const SECOND: i64 = 1_000_000;

    fn claims(sub: Uuid, sid: Option<&str>, iat_secs: i64) -> Claims {
        Claims {
            sub,
            name: "alice".into(),
            role: Role::User,
            iat: iat_secs,
            exp: iat_secs + 900,
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
            jti: Uuid::new_v4(),
            sid: sid.map(str::to_owned),
        }
    }

    fn revocation(sub: Uuid, sid: Option<&str>, revoked_at: i64, lives: i64) -> Revocation {
        Revocation {
            sub,
            sid: sid.map(str::to_owned),
            revoked_at,
            expires_at: revoked_at + lives,
        }
    }

    #[test]
    fn a_revoked_session_refuses_its_tokens_only() {
        let list = RevocationList::unfed();
        let sub = Uuid::new_v4();
        let now = now_micros();
        list.apply(&[revocation(sub, Some("ended"), now, 900 * SECOND)]);
        let iat = now / SECOND;
        assert!(matches!(
            list.check(&claims(sub, Some("ended"), iat)),
            Err(AuthError::Revoked)
        ));
        assert!(list.check(&claims(sub, Some("other"), iat)).is_ok());
        assert!(list.check(&claims(sub, None, iat)).is_ok());
    }

    #[test]
    fn a_revoked_subject_refuses_its_sessionless_tokens_issued_up_to_the_revocation() {
        let list = RevocationList::unfed();
        let (sub, other) = (Uuid::new_v4(), Uuid::new_v4());
        let now = now_micros();
        list.apply(&[revocation(sub, None, now, 900 * SECOND)]);
        let iat = now / SECOND;
        for iat in [iat, iat - 600] {
            assert!(matches!(
                list.check(&claims(sub, None, iat)),
                Err(AuthError::Revoked)
            ));
        }
        assert!(list.check(&claims(sub, None, iat + 1)).is_ok());
        assert!(list.check(&claims(other, None, iat)).is_ok());
        // Sessions are revoked one by one, so a session started after the account was enabled
        // again, in the same second, works.
        assert!(list.check(&claims(sub, Some("new"), iat)).is_ok());
    }

    #[test]
    fn entries_whose_tokens_have_all_expired_are_forgotten() {
        let list = RevocationList::unfed();
        let now = now_micros();
        let (gone, live) = (Uuid::new_v4(), Uuid::new_v4());
        list.apply(&[
            revocation(gone, Some("old"), now - 1_000 * SECOND, 900 * SECOND),
            revocation(live, Some("new"), now, 900 * SECOND),
        ]);
        assert_eq!(list.len(), 1);
        list.apply(&[revocation(gone, None, now - 1_000 * SECOND, 999 * SECOND)]);
        assert_eq!(list.len(), 1);
        // An entry held from an earlier poll goes once its tokens have expired.
        list.entries
            .write()
            .expect("lock")
            .sessions
            .insert("lapsed".into(), now - 1);
        list.apply(&[]);
        assert_eq!(list.len(), 1);
        assert!(list.check(&claims(gone, Some("old"), now / SECOND)).is_ok());
        assert!(list
            .check(&claims(gone, Some("lapsed"), now / SECOND))
            .is_ok());
    }

    #[test]
    fn a_fed_list_that_never_answered_refuses_every_token() {
        let list = RevocationList::fed_from(RevocationSource {
            urls: vec!["http://127.0.0.1:9/internal/revocations".into()],
            poll_interval: Duration::from_secs(1),
            max_staleness: Duration::from_secs(5),
        });
        let token = claims(Uuid::new_v4(), Some("s"), now_micros() / SECOND);
        assert!(matches!(
            list.check(&token),
            Err(AuthError::RevocationsUnavailable)
        ));
        // ...and says so to `/readyz`, so the gateway sends no token there in vain.
        let not_ready = list
            .readiness()
            .expect_err("not ready before the feed answered");
        assert!(not_ready.contains("revocation feed"), "{not_ready}");
        assert_eq!(RevocationList::unfed().readiness(), Ok(()));
    }
}
