-- Schema v3, PostgreSQL dialect (keep in step with ../sqlite/0003_decisions.sql): the
-- decisions of POST /v1/authenticate, for the relying party's server-to-server read
-- (GET /v1/users/{id}/decisions). No biometric data: the decision, its scores and the
-- signed verdict. Bounded per user (verdict.decisions_kept, pruned on insert) and by
-- age (verdict.decision_days, the retention sweep).

CREATE TABLE decisions (
    -- The verdict's `jti`.
    token_id      TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (user_id),
    device_id     BYTEA   NOT NULL,
    -- Server clock, Unix ms.
    decided_at_ms BIGINT  NOT NULL,
    -- accept | step_up | reject
    decision      TEXT    NOT NULL,
    confidence    DOUBLE PRECISION NOT NULL,
    llr           DOUBLE PRECISION NOT NULL,
    degraded      BOOLEAN NOT NULL,
    -- JSON array of the factor names whose evidence counted.
    factors       TEXT    NOT NULL,
    -- The relying party's nonce of the request ('' when it carried none).
    nonce         TEXT    NOT NULL,
    -- The signed verdict (compact JWS).
    token         TEXT    NOT NULL
);
CREATE INDEX decisions_user_time ON decisions (user_id, decided_at_ms);
CREATE INDEX decisions_time ON decisions (decided_at_ms);
