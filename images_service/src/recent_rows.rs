//! Image rows read recently, so that a repeated download or metadata read asks the database
//! nothing. A row never changes after its upload; deleting it is the only change, and this
//! instance forgets the row as soon as its delete commits. A copy is kept at most
//! [`ROW_TTL`], which bounds how long another instance's delete can go unseen (the old and the
//! new task of a rolling update share one database for a few seconds).
//!
//! Ownership is still checked on every request, against the row's owner.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use moka::sync::Cache;
use uuid::Uuid;

use crate::db::ImageRow;

/// How long a row is kept after it was read from the database.
pub const ROW_TTL: Duration = Duration::from_secs(5);
/// Rows kept at most (a few hundred bytes each). Only rows that exist are kept, so guessing ids
/// fills nothing.
const MAX_ROWS: u64 = 50_000;

/// The cache of rows by image id.
#[derive(Clone)]
pub struct RecentRows {
    rows: Cache<Uuid, Arc<ImageRow>>,
    /// Counts the deletes this instance has committed. A row read from the database is kept
    /// only if no delete committed while it was being read: otherwise the read may have seen a
    /// row that is gone now, and keeping it would bring the image back.
    deletes: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for RecentRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentRows")
            .field("rows", &self.rows.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for RecentRows {
    fn default() -> Self {
        Self::new(MAX_ROWS, ROW_TTL)
    }
}

impl RecentRows {
    /// A cache of at most `max_rows` rows, each kept at most `ttl`.
    pub fn new(max_rows: u64, ttl: Duration) -> Self {
        Self {
            rows: Cache::builder()
                .max_capacity(max_rows)
                .time_to_live(ttl)
                .build(),
            deletes: Arc::new(Mutex::new(0)),
        }
    }

    /// The row of `id`: the kept copy, or what `read` finds in the database (kept when found).
    pub async fn get_or_read<F, E>(&self, id: Uuid, read: F) -> Result<Option<Arc<ImageRow>>, E>
    where
        F: std::future::Future<Output = Result<Option<ImageRow>, E>>,
    {
        if let Some(row) = self.rows.get(&id) {
            return Ok(Some(row));
        }
        let deletes_before = self.deletes_committed();
        let Some(row) = read.await?.map(Arc::new) else {
            return Ok(None);
        };
        let deletes = self.deletes.lock().unwrap_or_else(PoisonError::into_inner);
        if *deletes == deletes_before {
            self.rows.insert(id, Arc::clone(&row));
        }
        Ok(Some(row))
    }

    /// Forgets `id`; called once its delete has committed.
    pub fn forget(&self, id: Uuid) {
        let mut deletes = self.deletes.lock().unwrap_or_else(PoisonError::into_inner);
        *deletes += 1;
        self.rows.invalidate(&id);
    }

    fn deletes_committed(&self) -> u64 {
        *self.deletes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use common::timestamp::Timestamp;

    use super::*;

    fn row(id: Uuid) -> ImageRow {
        ImageRow {
            id: id.to_string(),
            owner_id: Uuid::nil().to_string(),
            sha256: "00".repeat(32),
            content_type: "image/png".to_owned(),
            width: 1,
            height: 1,
            bytes: 67,
            created_at: Timestamp::now(),
        }
    }

    /// What `rows` answers for `id` when the database would answer `row`.
    async fn read(rows: &RecentRows, id: Uuid, row: Option<ImageRow>) -> Option<Arc<ImageRow>> {
        rows.get_or_read(id, async { Ok::<_, ()>(row) })
            .await
            .expect("the database read does not fail")
    }

    #[tokio::test]
    async fn a_row_read_once_is_answered_from_memory() {
        let rows = RecentRows::default();
        let id = Uuid::new_v4();
        let first = read(&rows, id, Some(row(id))).await.expect("found");
        let second = rows
            .get_or_read(id, async { Err("the database was asked again") })
            .await
            .expect("answered from memory")
            .expect("found");
        assert_eq!(first.id, second.id);
    }

    #[tokio::test]
    async fn a_missing_row_is_not_kept() {
        let rows = RecentRows::default();
        let id = Uuid::new_v4();
        assert!(read(&rows, id, None).await.is_none());
        assert!(
            read(&rows, id, Some(row(id))).await.is_some(),
            "an upload after the miss is seen at once"
        );
    }

    #[tokio::test]
    async fn a_forgotten_row_is_read_again() {
        let rows = RecentRows::default();
        let id = Uuid::new_v4();
        read(&rows, id, Some(row(id))).await;
        rows.forget(id);
        assert!(read(&rows, id, None).await.is_none());
    }

    #[tokio::test]
    async fn a_row_read_while_a_delete_commits_is_not_kept() {
        let rows = RecentRows::default();
        let id = Uuid::new_v4();
        // The read sees the row, the delete commits and forgets it, then the read finishes.
        let racing = async {
            rows.forget(id);
            Ok::<_, ()>(Some(row(id)))
        };
        let seen = rows.get_or_read(id, racing).await.expect("read");
        assert!(seen.is_some());
        assert!(
            read(&rows, id, None).await.is_none(),
            "the deleted row came back from the cache"
        );
    }

    #[tokio::test]
    async fn a_row_is_kept_no_longer_than_its_time_to_live() {
        let rows = RecentRows::new(10, Duration::from_millis(1));
        let id = Uuid::new_v4();
        read(&rows, id, Some(row(id))).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while rows.rows.contains_key(&id) {
            assert!(
                std::time::Instant::now() < deadline,
                "the row outlived its time to live"
            );
            std::thread::yield_now();
        }
        assert!(read(&rows, id, None).await.is_none());
    }
}
