//! The `images` table, through `sqlx::AnyPool` so one code path serves SQLite and PostgreSQL.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    any::{install_default_drivers, AnyPoolOptions},
    AnyPool, Executor,
};
use uuid::Uuid;

use crate::domain::Cursor;

/// The name of the unique (owner, digest) constraint: a violation means "already uploaded".
pub const OWNER_DIGEST_CONSTRAINT: &str = "images_owner_sha256_key";

/// Opens the database (creating a SQLite file and its directory when missing) and runs the
/// migrations.
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite {
        prepare_sqlite(url)?
    } else {
        url.to_owned()
    };
    let mut options = AnyPoolOptions::new()
        .max_connections(if sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(5));
    if sqlite {
        options = options.after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        });
    }
    let pool = options
        .connect(&url)
        .await
        .context("cannot open the database (DATABASE_URL)")?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .context("cannot run the database migrations")?;
    Ok(pool)
}

/// Creates the directory of a SQLite file and asks SQLite to create the file.
fn prepare_sqlite(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(url.to_owned());
    }
    if let Some(parent) = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// One image's metadata.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImageRow {
    pub id: String,
    pub owner_id: String,
    pub sha256: String,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

const COLUMNS: &str = "id, owner_id, sha256, content_type, width, height, bytes, created_at";

/// Whether the database answers (for `/readyz`).
pub async fn check(pool: &AnyPool) -> Result<(), String> {
    pool.execute("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| format!("database unusable: {e}"))
}

#[tracing::instrument(skip_all, fields(image_id = %row.id))]
pub async fn insert(pool: &AnyPool, row: &ImageRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO images ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&row.id)
    .bind(&row.owner_id)
    .bind(&row.sha256)
    .bind(&row.content_type)
    .bind(row.width)
    .bind(row.height)
    .bind(row.bytes)
    .bind(row.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(%owner))]
pub async fn find_by_digest(
    pool: &AnyPool,
    owner: Uuid,
    sha256: &str,
) -> Result<Option<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM images WHERE owner_id = $1 AND sha256 = $2"
    ))
    .bind(owner.to_string())
    .bind(sha256)
    .fetch_optional(pool)
    .await
}

#[tracing::instrument(skip_all, fields(%owner, %id))]
pub async fn find(pool: &AnyPool, owner: Uuid, id: Uuid) -> Result<Option<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM images WHERE id = $1 AND owner_id = $2"
    ))
    .bind(id.to_string())
    .bind(owner.to_string())
    .fetch_optional(pool)
    .await
}

/// The owner's images, newest first, after `after` when given; at most `limit`.
#[tracing::instrument(skip_all, fields(%owner, limit))]
pub async fn list(
    pool: &AnyPool,
    owner: Uuid,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<ImageRow>, sqlx::Error> {
    match after {
        None => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM images WHERE owner_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2"
            ))
            .bind(owner.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some(cursor) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM images WHERE owner_id = $1 \
                 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ))
            .bind(owner.to_string())
            .bind(cursor.created_at)
            .bind(cursor.id.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

/// Deletes the owner's image; `false` when there was none.
#[tracing::instrument(skip_all, fields(%owner, %id))]
pub async fn delete(pool: &AnyPool, owner: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM images WHERE id = $1 AND owner_id = $2")
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Whether any user has an image with this id.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn exists(pool: &AnyPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM images WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Whether `error` is the (owner, digest) unique violation.
pub fn is_duplicate_digest(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.is_unique_violation() || e.constraint() == Some(OWNER_DIGEST_CONSTRAINT)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_asks_for_the_file_to_be_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/nested/images.db", dir.path().display());
        assert_eq!(
            prepare_sqlite(&url).expect("prepared"),
            format!("{url}?mode=rwc")
        );
        assert!(dir.path().join("nested").is_dir());
        assert_eq!(
            prepare_sqlite("sqlite::memory:").expect("memory"),
            "sqlite::memory:"
        );
    }
}
