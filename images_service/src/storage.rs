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
use moka::sync::Cache;
use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore,
    GetResultPayload, ObjectStore, WriteMultipart,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const TMP_PREFIX: &str = "tmp";

/// A finished upload's temporary blob. [`TemporaryBlob::remove`] deletes it once the upload is
/// settled (after a commit it is gone already, which is fine). If the request ends first, its
/// client gone or its time up while the image is checked, dropping the guard deletes the blob
/// in the background instead of leaving it to the next start-up's sweep.
pub struct TemporaryBlob {
    store: BlobStore,
    key: Option<Path>,
}

impl TemporaryBlob {
    /// Deletes the blob now.
    pub async fn remove(mut self) {
        if let Some(key) = self.key.take() {
            remove_temporary(&self.store, &key).await;
        }
    }
}

impl Drop for TemporaryBlob {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let store = self.store.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { remove_temporary(&store, &key).await });
            }
            Err(_) => tracing::warn!(%key, "temporary blob left for the start-up sweep"),
        }
    }
}

async fn remove_temporary(store: &BlobStore, key: &Path) {
    if let Err(e) = store.remove(key).await {
        tracing::warn!(error = %e, %key, "temporary blob not removed; the start-up sweep will");
    }
}

/// A cache of blobs weighed by their length, holding at most `bytes` in all.
fn recent_blobs(bytes: u64) -> Cache<Uuid, Bytes> {
    Cache::builder()
        .max_capacity(bytes)
        .weigher(|_, blob: &Bytes| u32::try_from(blob.len()).unwrap_or(u32::MAX))
        .build()
}

const BLOB_PREFIX: &str = "blobs";
/// A key nothing writes: asking for its metadata is the readiness probe.
const PROBE_KEY: &str = "blobs/readiness-probe";

/// The id of the installation the store belongs to; the database holds the same id.
const INSTALLATION_KEY: &str = "installation";

/// The blob store of the service.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store; its staging files are invisible to `list`.
    local_root: Option<PathBuf>,
    /// Small blobs read recently. A committed blob never changes (every image has a new id), so
    /// a copy is never stale; ownership is still checked on every request, against the row.
    recent: Cache<Uuid, Bytes>,
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
                recent: recent_blobs(0),
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
                recent: recent_blobs(0),
            });
        }
        bail!("unsupported blob store URL; expected `file://DIR` or `s3://BUCKET`")
    }

    /// Keeps up to `bytes` of recently read small blobs in memory (0: none).
    pub fn with_read_cache(mut self, bytes: u64) -> Self {
        self.recent = recent_blobs(bytes);
        self
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
    /// response the server writes in one piece with its headers. Served from memory when it
    /// was read recently.
    pub async fn read(&self, image_id: Uuid) -> object_store::Result<Bytes> {
        if let Some(bytes) = self.recent.get(&image_id) {
            return Ok(bytes);
        }
        let bytes = self
            .store
            .get(&Self::blob_key(image_id))
            .await?
            .bytes()
            .await?;
        self.recent.insert(image_id, bytes.clone());
        Ok(bytes)
    }

    /// Deletes an image's blob (and any copy in memory); a blob that is already gone is fine.
    pub async fn remove_blob(&self, image_id: Uuid) -> object_store::Result<()> {
        self.recent.invalidate(&image_id);
        self.remove(&Self::blob_key(image_id)).await
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

    /// Holds the finished temporary blob at `key` until [`TemporaryBlob::remove`]; see there.
    pub fn temporary(&self, key: Path) -> TemporaryBlob {
        TemporaryBlob {
            store: self.clone(),
            key: Some(key),
        }
    }

    /// Deletes `key`; a key that is already gone is fine.
    pub async fn remove(&self, key: &Path) -> object_store::Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the store answers (for `/readyz`, probed every second): the metadata of one key,
    /// whose absence is an answer too. Its cost does not grow with the number of blobs, as a
    /// listing's would. S3 answers a missing key with 404 given `s3:ListBucket`, which the
    /// start-up sweep needs anyway; without it, 403, and the service is not ready.
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
        match self.store.head(&Path::from(PROBE_KEY)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("blob store unusable: {e}")),
        }
    }

    /// The id of the installation this store belongs to, once it has one.
    pub async fn installation(&self) -> anyhow::Result<Option<String>> {
        match self.store.get(&Path::from(INSTALLATION_KEY)).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the id of the installation this store belongs to.
    pub async fn set_installation(&self, id: &str) -> object_store::Result<()> {
        self.store
            .put(&Path::from(INSTALLATION_KEY), id.to_owned().into())
            .await
            .map(|_| ())
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use object_store::{
        GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions,
        PutOptions, PutPayload, PutResult,
    };

    use super::*;

    /// A store that records the name of every operation before passing it on.
    #[derive(Debug)]
    struct Recording {
        inner: Arc<dyn ObjectStore>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Recording {
        fn record(&self, call: &'static str) {
            self.calls.lock().expect("calls").push(call);
        }

        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().expect("calls").clone()
        }
    }

    impl std::fmt::Display for Recording {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Recording({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Recording {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.record("put");
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.record("put_multipart");
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.record(if options.head { "head" } else { "get" });
            self.inner.get_opts(location, options).await
        }

        async fn delete(&self, location: &Path) -> object_store::Result<()> {
            self.record("delete");
            self.inner.delete(location).await
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.record("list");
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.record("list_with_delimiter");
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.record("copy");
            self.inner.copy(from, to).await
        }

        async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.record("copy_if_not_exists");
            self.inner.copy_if_not_exists(from, to).await
        }
    }

    /// A local store holding `blobs` committed one-byte blobs, seen through a [`Recording`].
    fn recorded_store_with(dir: &std::path::Path, blobs: usize) -> (BlobStore, Arc<Recording>) {
        let store = BlobStore::open(&format!("file://{}", dir.display())).expect("store");
        std::fs::create_dir_all(dir.join(BLOB_PREFIX)).expect("blob directory");
        for _ in 0..blobs {
            std::fs::write(dir.join(BLOB_PREFIX).join(Uuid::new_v4().to_string()), b"x")
                .expect("blob");
        }
        let recording = Arc::new(Recording {
            inner: store.store.clone(),
            calls: Mutex::new(Vec::new()),
        });
        let recorded = BlobStore {
            store: recording.clone(),
            ..store
        };
        (recorded, recording)
    }

    #[tokio::test]
    async fn readiness_asks_the_store_one_question_however_many_blobs_it_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, recording) = recorded_store_with(dir.path(), 20_000);
        store.check().await.expect("ready");
        // A listing, even one page of it, would read every blob's entry of a local store.
        assert_eq!(recording.calls(), ["head"]);
    }

    #[tokio::test]
    async fn a_blob_directory_that_is_gone_is_not_ready() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = recorded_store_with(dir.path(), 1);
        std::fs::remove_dir_all(dir.path()).expect("removed");
        let reason = store.check().await.expect_err("not ready");
        assert!(reason.contains("missing"), "{reason}");
    }

    async fn committed_blob(store: &BlobStore, bytes: &'static [u8]) -> Uuid {
        let key = BlobStore::temporary_key();
        store
            .store
            .put(&key, Bytes::from_static(bytes).into())
            .await
            .expect("put");
        let id = Uuid::now_v7();
        store.commit(&key, id).await.expect("commit");
        id
    }

    #[tokio::test]
    async fn a_removed_blob_is_not_served_from_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&format!("file://{}", dir.path().display()))
            .expect("open")
            .with_read_cache(1024 * 1024);
        let id = committed_blob(&store, b"small image").await;
        assert_eq!(store.read(id).await.expect("read"), &b"small image"[..]);
        assert_eq!(
            store.read(id).await.expect("read again"),
            &b"small image"[..]
        );

        store.remove_blob(id).await.expect("remove");
        assert!(matches!(
            store.read(id).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_temporary_blob_dropped_before_it_is_settled_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&format!("file://{}", dir.path().display())).expect("open");
        let key = BlobStore::temporary_key();
        store
            .store
            .put(&key, Bytes::from_static(b"half-checked image").into())
            .await
            .expect("put");
        // The request that held it is cancelled: its future, and the guard, are dropped.
        drop(store.temporary(key.clone()));
        testkit::eventually(
            "the temporary blob is deleted",
            std::time::Duration::from_secs(10),
            || {
                let (store, key) = (store.clone(), key.clone());
                async move {
                    matches!(
                        store.store.head(&key).await,
                        Err(object_store::Error::NotFound { .. })
                    )
                }
            },
        )
        .await;
    }
}
