-- Schema v2, PostgreSQL dialect (keep in step with ../sqlite/0002_authenticate.sql):
-- what POST /v1/authenticate needs.

-- Newest authentication request time seen from a device (device clock, Unix ms): a
-- signed request is accepted only if its time is later, so a captured request cannot
-- be replayed, whichever gateway replica receives it.
ALTER TABLE devices ADD COLUMN last_auth_ms BIGINT NOT NULL DEFAULT 0;

-- Consecutive `reject` decisions of a user; reset by an `accept` or an unlock (a
-- successful step-up reported by the app's backend).
ALTER TABLE users ADD COLUMN consecutive_rejects BIGINT NOT NULL DEFAULT 0;

-- A user's newest envelopes, for the evidence of an authentication.
CREATE INDEX envelopes_user_created ON envelopes (user_id, created_at_ms);
