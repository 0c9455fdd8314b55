//! Image blobs in an object store: a local directory by default, any S3-compatible store by
//! configuration.
//!
//! An upload streams to a temporary key `tmp/<uuid>` and is committed by renaming it to
//! `blobs/<image_id>` before its metadata row is written, so a crash can leave a stale temporary
//! or a blob without a row — both swept at start — but never a row without its blob. Keys are
//! built from UUIDs only; a client's file name never reaches the store.

use std::{
    io::{Seek, SeekFrom},
    path::PathBuf,
    sync::Arc,
};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{stream::BoxStream, TryStreamExt};
use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore,
    GetResultPayload, ObjectStore, WriteMultipart,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const TMP_PREFIX: &str = "tmp";
const BLOB_PREFIX: &str = "blobs";

/// The blob store of the service.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store; its staging files are invisible to `list`.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.store.to_string())
            .finish()
    }
}

impl BlobStore {
    /// Opens `file://DIR` (created when missing; relative to the working directory unless
    /// absolute) or `s3://BUCKET[/PREFIX]` (credentials, region and endpoint from `AWS_*`).
    pub fn open(url: &str) -> anyhow::Result<Self> {
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                bail!("`file://` needs a directory, e.g. `file://data/blobs`");
            }
            let root = PathBuf::from(dir);
            std::fs::create_dir_all(root.join(TMP_PREFIX))
                .with_context(|| format!("cannot create the blob directory {}", root.display()))?;
            let root = std::fs::canonicalize(&root)?;
            let store = LocalFileSystem::new_with_prefix(&root)?;
            return Ok(Self {
                store: Arc::new(store),
                local_root: Some(root),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("`s3://` needs a bucket name, e.g. `s3://forgettable-images`");
            }
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix)),
            };
            return Ok(Self {
                store,
                local_root: None,
            });
        }
        bail!("unsupported blob store URL; expected `file://DIR` or `s3://BUCKET`")
    }

    /// A fresh temporary key for one upload.
    pub fn temporary_key() -> Path {
        Path::from(format!("{TMP_PREFIX}/{}", Uuid::new_v4().simple()))
    }

    /// The committed key of an image.
    pub fn blob_key(image_id: Uuid) -> Path {
        Path::from(format!("{BLOB_PREFIX}/{image_id}"))
    }

    /// Starts a streamed write to `key`, buffering at most one part in memory at a time per
    /// in-flight part (see [`WriteMultipart::wait_for_capacity`]).
    pub async fn begin(&self, key: &Path) -> object_store::Result<WriteMultipart> {
        Ok(WriteMultipart::new(self.store.put_multipart(key).await?))
    }

    /// Commits a finished temporary blob as the image's blob.
    pub async fn commit(&self, temporary: &Path, image_id: Uuid) -> object_store::Result<()> {
        self.store
            .rename(temporary, &Self::blob_key(image_id))
            .await
    }

    /// A readable, seekable file with the blob's bytes, for decoding on the blocking pool: the
    /// blob's own file in a local store, otherwise a temporary copy (never the whole blob in
    /// memory).
    pub async fn open_file(&self, key: &Path) -> anyhow::Result<std::fs::File> {
        match self.store.get(key).await?.payload {
            GetResultPayload::File(mut file, _) => {
                file.seek(SeekFrom::Start(0))?;
                Ok(file)
            }
            GetResultPayload::Stream(mut stream) => {
                let mut spool = tokio::fs::File::from_std(tempfile::tempfile()?);
                while let Some(chunk) = stream.try_next().await? {
                    spool.write_all(&chunk).await?;
                }
                spool.flush().await?;
                let mut file = spool.into_std().await;
                file.seek(SeekFrom::Start(0))?;
                Ok(file)
            }
        }
    }

    /// The bytes of a small blob, read whole: one read instead of a stream of chunks, and a
    /// response the server writes in one piece with its headers.
    pub async fn read(&self, image_id: Uuid) -> object_store::Result<Bytes> {
        self.store
            .get(&Self::blob_key(image_id))
            .await?
            .bytes()
            .await
    }

    /// The bytes of an image's blob, streamed.
    pub async fn stream(
        &self,
        image_id: Uuid,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        Ok(self
            .store
            .get(&Self::blob_key(image_id))
            .await?
            .into_stream())
    }

    /// Deletes `key`; a key that is already gone is fine.
    pub async fn remove(&self, key: &Path) -> object_store::Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), String> {
        if let Some(root) = &self.local_root {
            if !tokio::fs::metadata(root)
                .await
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                return Err("the blob directory is missing".to_owned());
            }
        }
        self.store
            .list_with_delimiter(Some(&Path::from(BLOB_PREFIX)))
            .await
            .map(|_| ())
            .map_err(|e| format!("blob store unusable: {e}"))
    }

    /// Every committed blob: its key and the image id it is named after (`None` for a key that
    /// is not an image id).
    pub async fn committed(&self) -> object_store::Result<Vec<(Path, Option<Uuid>)>> {
        self.store
            .list(Some(&Path::from(BLOB_PREFIX)))
            .map_ok(|meta| {
                let id = meta.location.filename().and_then(|name| name.parse().ok());
                (meta.location, id)
            })
            .try_collect()
            .await
    }

    /// Removes every temporary blob, including a local store's partial staging files that
    /// `list` does not show. Only safe when no upload is running, i.e. at start.
    pub async fn remove_temporaries(&self) -> anyhow::Result<u64> {
        let mut removed = 0;
        let temporaries: Vec<_> = self
            .store
            .list(Some(&Path::from(TMP_PREFIX)))
            .try_collect()
            .await?;
        for meta in temporaries {
            self.remove(&meta.location).await?;
            removed += 1;
        }
        if let Some(root) = &self.local_root {
            let dir = root.join(TMP_PREFIX);
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                if entry.file_type().await?.is_file() {
                    tokio::fs::remove_file(entry.path()).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
