-- Schema v5, PostgreSQL dialect (keep in step with ../sqlite/0005_packs.sql): feature packs.
--
-- Ingest writes a request's envelopes of one device as one object (a pack) and commits
-- their rows in one transaction. A pack's row is inserted, uncommitted, before its
-- object is written and marked committed in the transaction of its envelope rows: a
-- crash in between leaves an uncommitted row, by which the retention sweep finds and
-- deletes the object nobody indexes. Retention deletes whole packs, once the newest
-- envelope in one has expired (a pack holds one day of creation times).
CREATE TABLE packs (
    object_key           TEXT    NOT NULL PRIMARY KEY,
    user_id              TEXT    NOT NULL REFERENCES users (user_id),
    device_id            BYTEA   NOT NULL,
    first_sequence       BIGINT NOT NULL,
    last_sequence        BIGINT NOT NULL,
    newest_created_at_ms BIGINT NOT NULL,
    written_at_ms        BIGINT NOT NULL,
    committed            BOOLEAN NOT NULL
);
CREATE INDEX packs_expiry ON packs (committed, newest_created_at_ms);
CREATE INDEX packs_unfinished ON packs (committed, written_at_ms);
CREATE INDEX packs_user ON packs (user_id);

-- Every object of the older layout (one envelope each) becomes a committed pack of one.
INSERT INTO packs (object_key, user_id, device_id, first_sequence, last_sequence,
                   newest_created_at_ms, written_at_ms, committed)
SELECT object_key, user_id, device_id, MIN(sequence), MAX(sequence), MAX(created_at_ms),
       MIN(received_at_ms), TRUE
FROM envelopes GROUP BY object_key, user_id, device_id;

-- Expiry goes by packs now, and (user_id, created_at_ms) serves the user's lookups:
-- two fewer indexes to update per stored envelope.
DROP INDEX envelopes_created;
DROP INDEX envelopes_user;
