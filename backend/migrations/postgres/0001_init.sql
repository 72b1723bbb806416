-- Tacit backend schema v1, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql:
-- the queries in src/store/sql.rs run unchanged on both.
-- Integers are BIGINT; ids, hashes and keys are BYTEA.

CREATE TABLE users (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    created_at_ms BIGINT  NOT NULL
);

-- Single-use enrolment tokens; only the SHA-256 of a token is stored.
CREATE TABLE enrolment_tokens (
    token_hash    BYTEA   NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    expires_at_ms BIGINT  NOT NULL
);
CREATE INDEX enrolment_tokens_user ON enrolment_tokens (user_id);

CREATE TABLE devices (
    device_id     BYTEA   NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    algorithm     BIGINT  NOT NULL,
    public_key    BYTEA   NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    -- Target of the envelopes' (device, user) foreign key.
    UNIQUE (device_id, user_id)
);
CREATE INDEX devices_user ON devices (user_id);

-- One row per stored envelope: the replay memory (shared/src/replay.rs) and the index
-- of the feature objects. The primary key is the replay rule's uniqueness.
CREATE TABLE envelopes (
    device_id      BYTEA   NOT NULL,
    sequence       BIGINT  NOT NULL,
    envelope_id    BYTEA   NOT NULL,
    user_id        TEXT    NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    records        BIGINT  NOT NULL,
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
    model_version BIGINT  NOT NULL,
    blob          BYTEA   NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (user_id, factor)
);
