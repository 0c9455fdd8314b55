//! The database every service with one opens the same way: SQLite or PostgreSQL through
//! `sqlx::AnyPool`, one choice of SQLite pragmas, one set of timeouts, migrations with one retry
//! policy, the readiness ping, and telling a *named* unique constraint's violation from any other.
//!
//! Several processes may share one SQLite file: WAL mode lets readers and the single writer
//! proceed together, and the busy timeout makes a writer wait for the lock instead of failing.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use sqlx::{any::AnyPoolOptions, error::ErrorKind, migrate::Migrator, AnyPool, Executor};

/// How long a SQLite writer waits for another connection's (or process's) write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a query waits for a free connection of the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite has one writer at a time, so a few connections suffice; PostgreSQL gets more.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// How many times migrations are tried before start-up fails.
const MIGRATION_ATTEMPTS: u32 = 5;

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Creates the file of a SQLite URL and its directory, so a fresh checkout just works. Returns
/// the file it made sure of; `None` for an in-memory database.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(None);
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
    Ok(Some(path.to_owned()))
}

/// Connects to `url` (`sqlite:` or `postgres:`), sets SQLite up for shared use, and runs the
/// service's migrations.
#[tracing::instrument(skip_all, fields(backend = if is_sqlite(url) { "sqlite" } else { "postgres" }))]
pub async fn connect(url: &str, migrator: &Migrator) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = is_sqlite(url);
    let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    let options = if sqlite {
        prepare_sqlite_file(url)?;
        options
            .max_connections(SQLITE_MAX_CONNECTIONS)
            // A SQLite connection is a file opened by this process: no server can drop it, so
            // the ping sqlx sends before lending a connection (a round trip to the connection's
            // worker thread, as costly as the query) finds nothing. PostgreSQL keeps it.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // busy_timeout first: switching to WAL itself needs a lock another process
                    // may hold.
                    let busy = SQLITE_BUSY_TIMEOUT.as_millis();
                    conn.execute(format!("PRAGMA busy_timeout = {busy}").as_str())
                        .await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
    } else {
        options.max_connections(POSTGRES_MAX_CONNECTIONS)
    };
    let pool = options
        .connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    migrate(&pool, migrator).await?;
    Ok(pool)
}

/// Runs the migrations. PostgreSQL serialises concurrent runs with an advisory lock; SQLite has
/// none, so when several replicas start on one fresh file the losers of the race fail once and
/// succeed on the retry, which finds the migrations applied.
pub async fn migrate(pool: &AnyPool, migrator: &Migrator) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < MIGRATION_ATTEMPTS => {
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

/// A unique constraint as each backend reports its violation: PostgreSQL by `name`; SQLite in
/// its message, by the index name for an index on expressions (`index 'name'`) and by the
/// columns otherwise (`table.a, table.b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueConstraint {
    pub name: &'static str,
    pub table: &'static str,
    /// The constrained columns in declaration order; empty for an index on expressions.
    pub columns: &'static [&'static str],
}

impl UniqueConstraint {
    /// Whether `error` is a violation of this constraint, not of another one.
    pub fn is_violated_by(&self, error: &sqlx::Error) -> bool {
        let sqlx::Error::Database(db) = error else {
            return false;
        };
        if db.kind() != ErrorKind::UniqueViolation {
            return false;
        }
        if let Some(name) = db.constraint() {
            return name == self.name;
        }
        let Some(target) = db.message().strip_prefix("UNIQUE constraint failed: ") else {
            return false;
        };
        if let Some(index) = target.strip_prefix("index ") {
            return index.trim_matches('\'') == self.name;
        }
        let reported: Vec<&str> = target.split(", ").collect();
        !self.columns.is_empty()
            && reported.len() == self.columns.len()
            && reported
                .iter()
                .zip(self.columns)
                .all(|(reported, column)| reported.split_once('.') == Some((self.table, *column)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    #[test]
    fn a_sqlite_url_gets_its_directory_and_file_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nested/deeper/users.db");
        let prepared =
            prepare_sqlite_file(&format!("sqlite://{}?mode=rwc", file.display())).expect("ok");
        assert_eq!(prepared.as_deref(), Some(file.as_path()));
        assert!(file.is_file());
    }

    #[test]
    fn in_memory_sqlite_gets_no_file() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite::memory:?cache=shared",
        ] {
            assert_eq!(prepare_sqlite_file(url).expect(url), None, "{url}");
        }
    }

    const PAIR: UniqueConstraint = UniqueConstraint {
        name: "things_owner_digest_key",
        table: "things",
        columns: &["owner", "digest"],
    };
    const LOWER_NAME: UniqueConstraint = UniqueConstraint {
        name: "things_name_key",
        table: "things",
        columns: &[],
    };

    async fn sqlite_with_things() -> (tempfile::TempDir, AnyPool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("db/things.db").display());
        let pool = connect(&url, &NO_MIGRATIONS).await.expect("connect");
        pool.execute(
            "CREATE TABLE things (id TEXT PRIMARY KEY, owner TEXT NOT NULL, digest TEXT NOT NULL, \
             name TEXT NOT NULL, CONSTRAINT things_owner_digest_key UNIQUE (owner, digest)); \
             CREATE UNIQUE INDEX things_name_key ON things (lower(name));",
        )
        .await
        .expect("schema");
        (dir, pool)
    }

    /// [`sqlite_with_things`] holding the row ('1', 'o', 'd', 'n').
    async fn sqlite_with_one_thing() -> (tempfile::TempDir, AnyPool) {
        let (dir, pool) = sqlite_with_things().await;
        sqlx::query("INSERT INTO things (id, owner, digest, name) VALUES ('1', 'o', 'd', 'n')")
            .execute(&pool)
            .await
            .expect("first row");
        (dir, pool)
    }

    async fn insert(
        pool: &AnyPool,
        id: &str,
        owner: &str,
        digest: &str,
        name: &str,
    ) -> sqlx::Error {
        sqlx::query("INSERT INTO things (id, owner, digest, name) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(owner)
            .bind(digest)
            .bind(name)
            .execute(pool)
            .await
            .expect_err("a unique violation")
    }

    #[tokio::test]
    async fn each_unique_violation_is_told_apart_on_sqlite() {
        let (_dir, pool) = sqlite_with_one_thing().await;

        let same_pair = insert(&pool, "2", "o", "d", "other").await;
        assert!(PAIR.is_violated_by(&same_pair), "{same_pair}");
        assert!(!LOWER_NAME.is_violated_by(&same_pair), "{same_pair}");

        let same_name = insert(&pool, "3", "p", "e", "N").await;
        assert!(LOWER_NAME.is_violated_by(&same_name), "{same_name}");
        assert!(!PAIR.is_violated_by(&same_name), "{same_name}");

        let same_id = insert(&pool, "1", "q", "f", "fresh").await;
        assert!(!PAIR.is_violated_by(&same_id), "{same_id}");
        assert!(!LOWER_NAME.is_violated_by(&same_id), "{same_id}");
    }

    #[tokio::test]
    async fn a_subset_of_the_columns_is_another_constraint() {
        let (_dir, pool) = sqlite_with_one_thing().await;
        let same_pair = insert(&pool, "2", "o", "d", "other").await;
        let owner_only = UniqueConstraint {
            name: "things_owner_key",
            table: "things",
            columns: &["owner"],
        };
        assert!(!owner_only.is_violated_by(&same_pair), "{same_pair}");
    }

    #[tokio::test]
    async fn a_sqlite_connection_has_the_shared_use_pragmas() {
        let (_dir, pool) = sqlite_with_things().await;
        let mut conn = pool.acquire().await.expect("connection");
        let journal = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .expect("journal_mode");
        let journal: String = sqlx::Row::try_get(&journal, 0).expect("text");
        assert_eq!(journal.to_lowercase(), "wal");
        for (pragma, expected) in [
            ("busy_timeout", 10_000),
            ("synchronous", 1),
            ("foreign_keys", 1),
        ] {
            let row = sqlx::query(&format!("PRAGMA {pragma}"))
                .fetch_one(&mut *conn)
                .await
                .expect(pragma);
            let value: i64 = sqlx::Row::try_get(&row, 0).expect("integer");
            assert_eq!(value, expected, "{pragma}");
        }
        assert!(ping(&pool).await.is_ok());
    }
}
