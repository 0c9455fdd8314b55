-- Image metadata. Portable between SQLite and PostgreSQL: TEXT uuids, BIGINT microsecond
-- timestamps. The blob lives in the object store under `blobs/<id>`.
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT images_owner_sha256_key UNIQUE (owner_id, sha256)
);

CREATE INDEX images_owner_created_idx ON images (owner_id, created_at, id);
