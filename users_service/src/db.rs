//! The database of users_service: its migrations and every query it runs. Connecting and the
//! readiness ping are [`common::db`]'s.
//!
//! SQL stays portable: `$N` placeholders (SQLite's driver accepts them), TEXT ids, BIGINT
//! [`Timestamp`] microseconds, nullable timestamps instead of booleans.

use std::{str::FromStr, time::Duration};

use common::{
    auth::{Claims, Revocation, Role},
    db::UniqueConstraint,
    timestamp::Timestamp,
};
use sqlx::{any::AnyRow, migrate::Migrator, AnyPool, Executor, Row};
use uuid::Uuid;

use crate::error::{Error, Result};

pub use common::db::ping;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Usernames are unique regardless of case: an index on `lower(username)`.
const USERNAME_KEY: UniqueConstraint = UniqueConstraint {
    name: "users_username_key",
    table: "users",
    columns: &[],
};

/// Emails are unique regardless of case: an index on `lower(email)`.
const EMAIL_KEY: UniqueConstraint = UniqueConstraint {
    name: "users_email_key",
    table: "users",
    columns: &[],
};

/// Connects to `url` and runs the migrations.
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    common::db::connect(url, &MIGRATOR).await
}

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        let id: String = row.try_get("id")?;
        let role: String = row.try_get("role")?;
        Ok(Self {
            id: Uuid::parse_str(&id).map_err(|e| anyhow::anyhow!("users.id {id:?}: {e}"))?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            role: Role::from_str(&role).map_err(|e| anyhow::anyhow!("users.role: {e}"))?,
            created_at: Timestamp::from_micros(row.try_get("created_at")?),
            disabled_at: row
                .try_get::<Option<i64>, _>("disabled_at")?
                .map(Timestamp::from_micros),
        })
    }
}

const USER_COLUMNS: &str = "id, username, email, password_hash, role, created_at, disabled_at";

/// A new account, ready to insert.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

/// Inserts a user; a taken username or email is a 409 that says which.
#[tracing::instrument(skip_all, fields(username = new.username))]
pub async fn insert_user(pool: &AnyPool, new: NewUser<'_>) -> Result<User> {
    let id = Uuid::now_v7();
    let now = Timestamp::now();
    let result = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(new.username)
    .bind(new.email)
    .bind(new.password_hash)
    .bind(new.role.as_str())
    .bind(now.as_micros())
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(User {
            id,
            username: new.username.to_owned(),
            email: new.email.to_owned(),
            password_hash: new.password_hash.to_owned(),
            role: new.role,
            created_at: now,
            disabled_at: None,
        }),
        Err(e) if USERNAME_KEY.is_violated_by(&e) => Err(username_taken(new.username)),
        Err(e) if EMAIL_KEY.is_violated_by(&e) => Err(email_taken()),
        Err(e) => Err(e.into()),
    }
}

fn username_taken(username: &str) -> Error {
    Error::Conflict(format!("The username `{username}` is already taken."))
}

fn email_taken() -> Error {
    Error::Conflict("An account with this email address already exists.".to_owned())
}

/// The 409 a registration with this username or email would get, found with one indexed read
/// so that a taken name costs no password hash. [`insert_user`] still catches a race.
#[tracing::instrument(skip_all)]
pub async fn registration_conflict(
    pool: &AnyPool,
    username: &str,
    email: &str,
) -> Result<Option<Error>> {
    let row = sqlx::query(
        "SELECT lower(username) = lower($1) AS same_name FROM users \
         WHERE lower(username) = lower($1) OR lower(email) = lower($2) \
         ORDER BY same_name DESC LIMIT 1",
    )
    .bind(username)
    .bind(email)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    // SQLite answers the comparison as an integer, PostgreSQL as a boolean.
    let same_name = row
        .try_get::<bool, _>("same_name")
        .or_else(|_| row.try_get::<i64, _>("same_name").map(|n| n != 0))?;
    Ok(Some(if same_name {
        username_taken(username)
    } else {
        email_taken()
    }))
}

/// The user with this username, compared case-insensitively.
#[tracing::instrument(skip_all)]
pub async fn find_user_by_username(pool: &AnyPool, username: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)");
    let row = sqlx::query(&sql)
        .bind(username)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn find_user(pool: &AnyPool, id: Uuid) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

/// Up to `limit` users in id order (UUIDv7 ids sort by creation time), after `after` if given.
#[tracing::instrument(skip_all, fields(limit))]
pub async fn list_users(pool: &AnyPool, after: Option<Uuid>, limit: i64) -> Result<Vec<User>> {
    let rows = match after {
        Some(after) => {
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
            sqlx::query(&sql)
                .bind(after.to_string())
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        None => {
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1");
            sqlx::query(&sql).bind(limit).fetch_all(pool).await?
        }
    };
    rows.iter().map(User::from_row).collect()
}

/// Changes a user's role and/or disabled state; disabling also revokes their refresh tokens and
/// records the revocation of every session whose access tokens may still live (`keep_for`).
/// `None` when there is no such user.
#[tracing::instrument(skip_all, fields(user_id = %id, ?disabled, ?role))]
pub async fn update_user(
    pool: &AnyPool,
    id: Uuid,
    disabled: Option<bool>,
    role: Option<Role>,
    keep_for: Duration,
) -> Result<Option<User>> {
    let now = Timestamp::now();
    let id_text = id.to_string();
    let mut tx = pool.begin().await?;
    let touched = sqlx::query("UPDATE users SET updated_at = $2 WHERE id = $1")
        .bind(&id_text)
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
    if touched.rows_affected() == 0 {
        return Ok(None);
    }
    if let Some(role) = role {
        sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
            .bind(&id_text)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    match disabled {
        Some(true) => {
            sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL")
                .bind(&id_text)
                .bind(now.as_micros())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(&id_text)
                .bind(now.as_micros())
                .execute(&mut *tx)
                .await?;
            // An access token comes with a refresh token of its session, so a session whose
            // newest refresh token is older than an access token can live has no live token.
            let sessions = sqlx::query(
                "SELECT DISTINCT family_id FROM refresh_tokens WHERE user_id = $1 AND created_at > $2",
            )
            .bind(&id_text)
            .bind(now.saturating_sub(keep_for).as_micros())
            .fetch_all(&mut *tx)
            .await?;
            for row in &sessions {
                let family: String = row.try_get("family_id")?;
                record_revocation(&mut tx, id, Some(&family), now, keep_for).await?;
            }
            record_revocation(&mut tx, id, None, now, keep_for).await?;
        }
        Some(false) => {
            sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1")
                .bind(&id_text)
                .execute(&mut *tx)
                .await?;
        }
        None => {}
    }
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql).bind(&id_text).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    User::from_row(&row).map(Some)
}

/// Whether any admin account exists.
#[tracing::instrument(skip_all)]
pub async fn admin_exists(pool: &AnyPool) -> Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Counts for `GET /admin/stats`.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub users: i64,
    pub admins: i64,
    pub disabled: i64,
    pub registered_last_24h: i64,
    pub active_sessions: i64,
}

#[tracing::instrument(skip_all)]
pub async fn stats(pool: &AnyPool) -> Result<Stats> {
    let now = Timestamp::now();
    let day_ago = now.saturating_sub(Duration::from_secs(24 * 3600));
    let row = sqlx::query(
        "SELECT COUNT(*) AS users, \
                COUNT(CASE WHEN role = 'admin' THEN 1 END) AS admins, \
                COUNT(CASE WHEN disabled_at IS NOT NULL THEN 1 END) AS disabled, \
                COUNT(CASE WHEN created_at >= $1 THEN 1 END) AS recent \
         FROM users",
    )
    .bind(day_ago.as_micros())
    .fetch_one(pool)
    .await?;
    let sessions = sqlx::query(
        "SELECT COUNT(DISTINCT family_id) AS n FROM refresh_tokens \
         WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now.as_micros())
    .fetch_one(pool)
    .await?;
    Ok(Stats {
        users: row.try_get("users")?,
        admins: row.try_get("admins")?,
        disabled: row.try_get("disabled")?,
        registered_last_24h: row.try_get("recent")?,
        active_sessions: sessions.try_get("n")?,
    })
}

/// A row of `refresh_tokens`.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub user_id: Uuid,
    pub family_id: String,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Stores a new refresh token (its hash) in `family_id`.
#[tracing::instrument(skip_all, fields(user_id = %user_id, family_id))]
pub async fn insert_refresh_token<'c, E>(
    executor: E,
    token_hash: &str,
    user_id: Uuid,
    family_id: &str,
    ttl: Duration,
) -> Result<()>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let now = Timestamp::now();
    let expires_at = now.saturating_add(ttl);
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id.to_string())
    .bind(family_id)
    .bind(now.as_micros())
    .bind(expires_at.as_micros())
    .execute(executor)
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn find_refresh_token(pool: &AnyPool, token_hash: &str) -> Result<Option<RefreshToken>> {
    let row = sqlx::query(
        "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        let user_id: String = row.try_get("user_id")?;
        Ok(RefreshToken {
            user_id: Uuid::parse_str(&user_id)
                .map_err(|e| anyhow::anyhow!("refresh_tokens.user_id: {e}"))?,
            family_id: row.try_get("family_id")?,
            expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
            used_at: row
                .try_get::<Option<i64>, _>("used_at")?
                .map(Timestamp::from_micros),
            revoked_at: row
                .try_get::<Option<i64>, _>("revoked_at")?
                .map(Timestamp::from_micros),
        })
    })
    .transpose()
}

/// Marks `old_hash` used and stores `new_hash` in the same family, atomically. `false` when the
/// old token was used or revoked meanwhile (a concurrent use: the caller treats it as reuse).
#[tracing::instrument(skip_all, fields(user_id = %user_id, family_id))]
pub async fn rotate_refresh_token(
    pool: &AnyPool,
    old_hash: &str,
    new_hash: &str,
    user_id: Uuid,
    family_id: &str,
    ttl: Duration,
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    // The first statement writes, so on SQLite the transaction takes the write lock at once and
    // waits for it under the busy timeout instead of failing on a stale read snapshot.
    let marked = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(old_hash)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        return Ok(false);
    }
    insert_refresh_token(&mut *tx, new_hash, user_id, family_id, ttl).await?;
    tx.commit().await?;
    Ok(true)
}

/// Revokes every refresh token of a family (a login session) and records the revocation of its
/// access tokens, kept `keep_for`. Returns how many refresh tokens were revoked; nothing is
/// recorded when the session was revoked already.
#[tracing::instrument(skip_all, fields(user_id = %user_id, family_id))]
pub async fn revoke_session(
    pool: &AnyPool,
    family_id: &str,
    user_id: Uuid,
    keep_for: Duration,
) -> Result<u64> {
    let now = Timestamp::now();
    let mut tx = pool.begin().await?;
    let result = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now.as_micros())
    .execute(&mut *tx)
    .await?;
    if result.rows_affected() > 0 {
        record_revocation(&mut tx, user_id, Some(family_id), now, keep_for).await?;
    }
    tx.commit().await?;
    Ok(result.rows_affected())
}

/// Records that `user_id`'s access tokens of `session` (or, without one, those without a session)
/// are revoked from `now`, until `keep_for` later; forgets revocations whose time has passed.
#[tracing::instrument(skip_all, fields(user_id = %user_id, session))]
async fn record_revocation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: Uuid,
    session: Option<&str>,
    now: Timestamp,
    keep_for: Duration,
) -> Result<()> {
    sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
        .bind(now.as_micros())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO revocations (id, user_id, session_id, revoked_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(user_id.to_string())
    .bind(session)
    .bind(now.as_micros())
    .bind(now.saturating_add(keep_for).as_micros())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The live revocations recorded at or after `since` (µs), oldest first.
#[tracing::instrument(skip_all, fields(since))]
pub async fn revocations_since(pool: &AnyPool, since: i64) -> Result<Vec<Revocation>> {
    let rows = sqlx::query(
        "SELECT user_id, session_id, revoked_at, expires_at FROM revocations \
         WHERE revoked_at >= $1 AND expires_at > $2 ORDER BY revoked_at",
    )
    .bind(since)
    .bind(Timestamp::now().as_micros())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let user_id: String = row.try_get("user_id")?;
            Ok(Revocation {
                sub: Uuid::parse_str(&user_id)
                    .map_err(|e| anyhow::anyhow!("revocations.user_id: {e}"))?,
                sid: row.try_get("session_id")?,
                revoked_at: row.try_get("revoked_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .collect()
}

/// The account of a verified access token, and whether a live revocation covers the token (its
/// session was ended, or, for a token without a session, every token of the account issued up
/// to a revocation): one query, as every authenticated request asks it.
#[tracing::instrument(skip_all, fields(user_id = %claims.sub))]
pub async fn find_token_user(pool: &AnyPool, claims: &Claims) -> Result<Option<(User, bool)>> {
    let now = Timestamp::now().as_micros();
    let sql = match claims.sid {
        Some(_) => format!(
            "SELECT {USER_COLUMNS}, (SELECT COUNT(*) FROM revocations \
             WHERE session_id = $2 AND expires_at > $3) AS revocations FROM users WHERE id = $1"
        ),
        None => format!(
            "SELECT {USER_COLUMNS}, (SELECT COUNT(*) FROM revocations \
             WHERE user_id = $1 AND session_id IS NULL AND revoked_at >= $2 AND expires_at > $3) \
             AS revocations FROM users WHERE id = $1"
        ),
    };
    let query = sqlx::query(&sql).bind(claims.sub.to_string());
    let query = match &claims.sid {
        Some(sid) => query.bind(sid),
        None => query.bind(claims.iat.saturating_mul(1_000_000)),
    };
    let Some(row) = query.bind(now).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let revoked = row.try_get::<i64, _>("revocations")? > 0;
    Ok(Some((User::from_row(&row)?, revoked)))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database left by the release that stored milliseconds gets every time multiplied by a
    /// thousand, NULL staying NULL; API output (RFC 3339) is then what it was.
    #[tokio::test]
    async fn stored_milliseconds_become_microseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let before = Migrator {
            migrations: Cow::Owned(MIGRATOR.migrations[..1].to_vec()),
            ..Migrator::DEFAULT
        };
        let pool = common::db::connect(&url, &before)
            .await
            .expect("old schema");
        pool.execute(
            "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
             VALUES ('0190a0a0-0000-7000-8000-000000000001', 'ann', 'ann@example.com', 'h', 'user', \
                     1700000000123, 1700000000456); \
             INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at, used_at) \
             VALUES ('t', '0190a0a0-0000-7000-8000-000000000001', 'f', 1700000000123, 1700000600123, \
                     1700000000999);",
        )
        .await
        .expect("old rows");

        common::db::migrate(&pool, &MIGRATOR)
            .await
            .expect("migrate");

        let user = find_user_by_username(&pool, "ann")
            .await
            .expect("query")
            .expect("user");
        assert_eq!(user.created_at.as_micros(), 1_700_000_000_123_000);
        assert_eq!(user.created_at.to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(user.disabled_at, None);
        let token = find_refresh_token(&pool, "t")
            .await
            .expect("query")
            .expect("token");
        assert_eq!(token.expires_at.as_micros(), 1_700_000_600_123_000);
        assert_eq!(
            token.used_at.map(Timestamp::as_micros),
            Some(1_700_000_000_999_000)
        );
        assert_eq!(token.revoked_at, None);
    }

    #[tokio::test]
    async fn a_taken_username_or_email_is_a_conflict_that_says_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let pool = connect(&url).await.expect("connect");
        let new = |username, email| NewUser {
            username,
            email,
            password_hash: "h",
            role: Role::User,
        };
        insert_user(&pool, new("ann", "ann@example.com"))
            .await
            .expect("first");
        let taken_name = insert_user(&pool, new("ANN", "other@example.com")).await;
        assert!(
            matches!(&taken_name, Err(Error::Conflict(m)) if m.contains("username")),
            "{taken_name:?}"
        );
        let taken_email = insert_user(&pool, new("bob", "Ann@Example.com")).await;
        assert!(
            matches!(&taken_email, Err(Error::Conflict(m)) if m.contains("email")),
            "{taken_email:?}"
        );
    }
}
