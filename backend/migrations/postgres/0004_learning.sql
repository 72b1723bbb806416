-- Schema v4, PostgreSQL dialect (keep in step with ../sqlite/0004_learning.sql): what
-- population models trained from the users' own uploads need.

-- Whether a user's uploaded features may train population models. Off unless the
-- operator records the user's consent (PUT /v1/users/{id}/training-consent); deleting
-- the user deletes the row and with it every later training set's access to them.
ALTER TABLE users ADD COLUMN training_consent BOOLEAN NOT NULL DEFAULT FALSE;

-- The model version that built a template ('' when the factor did not say): after a
-- new model is promoted, the templates of other versions are found here and rebuilt.
ALTER TABLE templates ADD COLUMN built_with TEXT NOT NULL DEFAULT '';
CREATE INDEX templates_factor_built_with ON templates (factor, built_with);
