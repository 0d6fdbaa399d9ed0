-- aiwaf schema, version 1. Times are milliseconds since the Unix epoch.

CREATE TABLE blacklist (
    ip          TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    detector    TEXT NOT NULL,
    evidence    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,             -- NULL: permanent
    offences    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX blacklist_expires ON blacklist (expires_at);

CREATE TABLE exemptions (
    net         TEXT PRIMARY KEY,    -- an address or a CIDR network
    reason      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE keywords (
    keyword     TEXT PRIMARY KEY,
    count       INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    ts          INTEGER NOT NULL,
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
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id       TEXT NOT NULL,
    ts               INTEGER NOT NULL,
    ip               TEXT NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    query            TEXT NOT NULL DEFAULT '',
    status           INTEGER NOT NULL,
    response_time_ms REAL NOT NULL,
    user_agent       TEXT NOT NULL DEFAULT '',
    referer          TEXT NOT NULL DEFAULT '',
    content_length   INTEGER,
    blocked          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX request_log_ts ON request_log (ts);
CREATE INDEX request_log_ip ON request_log (ip, ts);

CREATE TABLE known_paths (
    path        TEXT PRIMARY KEY,
    last_ok_at  INTEGER NOT NULL
);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);

-- Bumped by every change a running server must see; servers poll it.
CREATE TABLE meta (
    key         TEXT PRIMARY KEY,
    value       INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);

CREATE TRIGGER blacklist_ins AFTER INSERT ON blacklist BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER blacklist_upd AFTER UPDATE ON blacklist BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER blacklist_del AFTER DELETE ON blacklist BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER exemptions_ins AFTER INSERT ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER exemptions_upd AFTER UPDATE ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER exemptions_del AFTER DELETE ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER keywords_ins AFTER INSERT ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER keywords_upd AFTER UPDATE ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER keywords_del AFTER DELETE ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER settings_ins AFTER INSERT ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER settings_upd AFTER UPDATE ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER settings_del AFTER DELETE ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
