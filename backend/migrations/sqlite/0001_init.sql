-- Tacit backend schema v1, SQLite dialect. Keep in step with ../postgres/0001_init.sql:
-- the queries in src/store/sql.rs run unchanged on both.
-- Integers are 64-bit (INTEGER); ids, hashes and keys are BLOBs.

CREATE TABLE users (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    created_at_ms INTEGER NOT NULL
);

-- Single-use enrolment tokens; only the SHA-256 of a token is stored.
CREATE TABLE enrolment_tokens (
    token_hash    BLOB    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX enrolment_tokens_user ON enrolment_tokens (user_id);

CREATE TABLE devices (
    device_id     BLOB    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    algorithm     INTEGER NOT NULL,
    public_key    BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    -- Target of the envelopes' (device, user) foreign key.
    UNIQUE (device_id, user_id)
);
CREATE INDEX devices_user ON devices (user_id);

-- One row per stored envelope: the replay memory (shared/src/replay.rs) and the index
-- of the feature objects. The primary key is the replay rule's uniqueness.
CREATE TABLE envelopes (
    device_id      BLOB    NOT NULL,
    sequence       INTEGER NOT NULL,
    envelope_id    BLOB    NOT NULL,
    user_id        TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    records        INTEGER NOT NULL,
    object_key     TEXT    NOT NULL,
    PRIMARY KEY (device_id, sequence),
    -- The envelope's user must be its device's user.
    FOREIGN KEY (device_id, user_id) REFERENCES devices (device_id, user_id)
);
CREATE INDEX envelopes_user ON envelopes (user_id);
CREATE INDEX envelopes_created ON envelopes (created_at_ms);

-- Per-user model templates; filled by the models issue (#6).
CREATE TABLE templates (
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    factor        TEXT    NOT NULL,
    model_version INTEGER NOT NULL,
    blob          BLOB    NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, factor)
);
