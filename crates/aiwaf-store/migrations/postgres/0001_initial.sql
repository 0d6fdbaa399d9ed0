-- aiwaf schema, version 1 (PostgreSQL). Times are milliseconds since the Unix epoch.

CREATE TABLE blacklist (
    ip          TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    detector    TEXT NOT NULL,
    evidence    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    offences    BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX blacklist_expires ON blacklist (expires_at);

CREATE TABLE exemptions (
    net         TEXT PRIMARY KEY,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE keywords (
    keyword     TEXT PRIMARY KEY,
    count       BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    request_id  TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    detector    TEXT NOT NULL,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    mode        TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_ip_ts ON events (ip, ts);
CREATE INDEX events_request ON events (request_id);

CREATE TABLE request_log (
    id               BIGSERIAL PRIMARY KEY,
    request_id       TEXT NOT NULL,
    ts               BIGINT NOT NULL,
    ip               TEXT NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    query            TEXT NOT NULL DEFAULT '',
    status           BIGINT NOT NULL,
    response_time_ms DOUBLE PRECISION NOT NULL,
    user_agent       TEXT NOT NULL DEFAULT '',
    referer          TEXT NOT NULL DEFAULT '',
    content_length   BIGINT,
    blocked          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX request_log_ts ON request_log (ts);
CREATE INDEX request_log_ip ON request_log (ip, ts);

CREATE TABLE known_paths (
    path        TEXT PRIMARY KEY,
    last_ok_at  BIGINT NOT NULL
);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);

CREATE TABLE meta (
    key         TEXT PRIMARY KEY,
    value       BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);

-- Every change a running server must see bumps the generation and notifies listeners at once
-- (channel per schema, so several deployments can share one database).
CREATE FUNCTION aiwaf_changed() RETURNS trigger AS $$
BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    PERFORM pg_notify('aiwaf_changes_' || current_schema(), TG_TABLE_NAME);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER blacklist_changed AFTER INSERT OR UPDATE OR DELETE ON blacklist FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_changed();
CREATE TRIGGER exemptions_changed AFTER INSERT OR UPDATE OR DELETE ON exemptions FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_changed();
CREATE TRIGGER keywords_changed AFTER INSERT OR UPDATE OR DELETE ON keywords FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_changed();
CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON settings FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_changed();
