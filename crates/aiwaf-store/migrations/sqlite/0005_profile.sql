-- The learned application profile (payload class `profile`): a server saves what it learned
-- here now and then and reads it back when it starts. One row per key ('default'); with
-- several instances the last one to save wins. Not a list: it bumps no generation.
CREATE TABLE aiwaf_profile (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
