-- Schema v3, PostgreSQL dialect (keep in step with ../sqlite/0003_store_meta.sql):
-- facts about the store itself, one row each.
--   at_rest_plaintext_before: 'yes' when the store already held features or templates
--   the first time it was opened with encryption at rest, so that blobs without the
--   encryption header are that older data and are read as they are; 'no' when it
--   started encrypted, so that any unencrypted blob is refused.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
