-- The installation this database belongs to: the same id is written into the blob store, so a
-- database and a store that were never used together are told apart at start-up (and the sweep
-- of blobs without a row never runs on a wrong or empty database). One row at most.
CREATE TABLE installation (
    id TEXT PRIMARY KEY
);
