//! The `images` table, through `sqlx::AnyPool` so one code path serves SQLite and PostgreSQL.
//! Connecting and the readiness ping are [`common::db`]'s.

use common::{db::UniqueConstraint, timestamp::Timestamp};
use sqlx::{migrate::Migrator, AnyPool};
use uuid::Uuid;

use crate::domain::Cursor;

pub use common::db::ping;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One owner's identical bytes are one image: a violation means "already uploaded".
pub const OWNER_DIGEST_KEY: UniqueConstraint = UniqueConstraint {
    name: "images_owner_sha256_key",
    table: "images",
    columns: &["owner_id", "sha256"],
};

/// Opens the database (creating a SQLite file and its directory when missing) and runs the
/// migrations.
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    common::db::connect(url, &MIGRATOR).await
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
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, owner_id, sha256, content_type, width, height, bytes, created_at";

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
    .bind(row.created_at.as_micros())
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

/// The image `id`, whoever owns it: the caller compares the owner.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn find(pool: &AnyPool, id: Uuid) -> Result<Option<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM images WHERE id = $1"))
        .bind(id.to_string())
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
            .bind(cursor.created_at.as_micros())
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

/// The id of the installation this database belongs to, once it has one.
pub async fn installation(pool: &AnyPool) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM installation")
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Records the id of the installation this database belongs to.
pub async fn set_installation(pool: &AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO installation (id) VALUES ($1)")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether `error` is the (owner, digest) unique violation, not any other.
pub fn is_duplicate_digest(error: &sqlx::Error) -> bool {
    OWNER_DIGEST_KEY.is_violated_by(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, owner: Uuid, sha256: &str) -> ImageRow {
        ImageRow {
            id: id.to_string(),
            owner_id: owner.to_string(),
            sha256: sha256.to_owned(),
            content_type: "image/png".to_owned(),
            width: 1,
            height: 1,
            bytes: 1,
            created_at: Timestamp::now(),
        }
    }

    #[tokio::test]
    async fn only_the_same_owner_and_digest_is_a_duplicate_upload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/images.db", dir.path().display());
        let pool = connect(&url).await.expect("connect");
        let (owner, first) = (Uuid::now_v7(), Uuid::now_v7());
        insert(&pool, &row(first, owner, "aa"))
            .await
            .expect("first");

        let same_bytes = insert(&pool, &row(Uuid::now_v7(), owner, "aa"))
            .await
            .expect_err("same owner and digest");
        assert!(is_duplicate_digest(&same_bytes), "{same_bytes}");

        let same_id = insert(&pool, &row(first, Uuid::now_v7(), "bb"))
            .await
            .expect_err("same id");
        assert!(!is_duplicate_digest(&same_id), "{same_id}");

        insert(&pool, &row(Uuid::now_v7(), Uuid::now_v7(), "aa"))
            .await
            .expect("another owner may store the same bytes");
    }

    #[tokio::test]
    async fn created_at_round_trips_in_microseconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/images.db", dir.path().display());
        let pool = connect(&url).await.expect("connect");
        let (owner, id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut stored = row(id, owner, "cc");
        stored.created_at = Timestamp::from_micros(1_764_000_000_123_456);
        insert(&pool, &stored).await.expect("insert");
        let found = find(&pool, id).await.expect("query").expect("row");
        assert_eq!(found.created_at, stored.created_at);
    }
}
