//! The database: connecting (SQLite or PostgreSQL through `sqlx::AnyPool`), migrations, and every
//! query users_service runs.
//!
//! SQL stays portable: `$N` placeholders (SQLite's driver accepts them), TEXT ids, BIGINT unix-ms
//! times, nullable timestamps instead of booleans. Several processes may share one SQLite file:
//! WAL mode lets readers and the single writer proceed together, and the busy timeout makes a
//! writer wait for the lock instead of failing.

use std::{path::Path, str::FromStr, time::Duration};

use anyhow::Context;
use common::auth::Role;
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    migrate::Migrator,
    AnyPool, Executor, Row,
};
use uuid::Uuid;

use crate::error::{Error, Result};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite writer waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Creates the parent directory and the file of a SQLite URL, so a fresh checkout just works.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<()> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// Connects to `url`, sets up SQLite for shared use, and runs the migrations.
#[tracing::instrument(skip_all, fields(backend = if is_sqlite(url) { "sqlite" } else { "postgres" }))]
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = is_sqlite(url);
    if sqlite {
        prepare_sqlite_file(url)?;
    }
    let options = AnyPoolOptions::new()
        .max_connections(if sqlite { 8 } else { 10 })
        .acquire_timeout(Duration::from_secs(10));
    let options = if sqlite {
        options.after_connect(|conn, _meta| {
            Box::pin(async move {
                // busy_timeout first: switching to WAL itself needs a lock another process may hold.
                conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
                    .await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
    } else {
        options
    };
    let pool = options
        .connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Runs the migrations. PostgreSQL serialises concurrent runs with an advisory lock; SQLite has
/// none, so when several replicas start on one fresh file the losers of the race fail once and
/// succeed on the retry, which finds the migrations applied.
async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "migration failed, retrying (another instance may be migrating)");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e).context("running database migrations"),
        }
    }
}

/// Readiness: the database answers a trivial query.
pub async fn ping(pool: &AnyPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("database: {e}"))
}

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
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
            created_at: row.try_get("created_at")?,
            disabled_at: row.try_get("disabled_at")?,
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

fn is_unique_violation_of(error: &sqlx::Error, index: &str) -> bool {
    match error {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            // PostgreSQL names the constraint; SQLite names the index in its message.
            db.constraint() == Some(index) || db.message().contains(index)
        }
        _ => false,
    }
}

/// Inserts a user; a taken username or email is a 409 that says which.
#[tracing::instrument(skip_all, fields(username = new.username))]
pub async fn insert_user(pool: &AnyPool, new: NewUser<'_>) -> Result<User> {
    let id = Uuid::now_v7();
    let now = now_ms();
    let result = sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(new.username)
    .bind(new.email)
    .bind(new.password_hash)
    .bind(new.role.as_str())
    .bind(now)
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
        Err(e) if is_unique_violation_of(&e, "users_username_key") => Err(Error::Conflict(
            format!("The username `{}` is already taken.", new.username),
        )),
        Err(e) if is_unique_violation_of(&e, "users_email_key") => Err(Error::Conflict(
            "An account with this email address already exists.".to_owned(),
        )),
        Err(e) => Err(e.into()),
    }
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

/// Changes a user's role and/or disabled state; disabling also revokes their refresh tokens.
/// `None` when there is no such user.
#[tracing::instrument(skip_all, fields(user_id = %id, ?disabled, ?role))]
pub async fn update_user(
    pool: &AnyPool,
    id: Uuid,
    disabled: Option<bool>,
    role: Option<Role>,
) -> Result<Option<User>> {
    let now = now_ms();
    let id_text = id.to_string();
    let mut tx = pool.begin().await?;
    let touched = sqlx::query("UPDATE users SET updated_at = $2 WHERE id = $1")
        .bind(&id_text)
        .bind(now)
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
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(&id_text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
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
    let now = now_ms();
    let day_ago = now - 24 * 3600 * 1000;
    let row = sqlx::query(
        "SELECT COUNT(*) AS users, \
                COUNT(CASE WHEN role = 'admin' THEN 1 END) AS admins, \
                COUNT(CASE WHEN disabled_at IS NOT NULL THEN 1 END) AS disabled, \
                COUNT(CASE WHEN created_at >= $1 THEN 1 END) AS recent \
         FROM users",
    )
    .bind(day_ago)
    .fetch_one(pool)
    .await?;
    let sessions = sqlx::query(
        "SELECT COUNT(DISTINCT family_id) AS n FROM refresh_tokens \
         WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
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
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
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
    let now = now_ms();
    let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id.to_string())
    .bind(family_id)
    .bind(now)
    .bind(expires_at)
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
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
            revoked_at: row.try_get("revoked_at")?,
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
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        return Ok(false);
    }
    insert_refresh_token(&mut *tx, new_hash, user_id, family_id, ttl).await?;
    tx.commit().await?;
    Ok(true)
}

/// Revokes every token of a family (a login session).
#[tracing::instrument(skip_all, fields(family_id))]
pub async fn revoke_family(pool: &AnyPool, family_id: &str) -> Result<u64> {
    let result = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_gets_its_directory_and_file_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nested/deeper/users.db");
        prepare_sqlite_file(&format!("sqlite://{}?mode=rwc", file.display())).expect("prepared");
        assert!(file.is_file());
    }

    #[test]
    fn in_memory_sqlite_needs_no_file() {
        assert!(prepare_sqlite_file("sqlite::memory:").is_ok());
    }
}
