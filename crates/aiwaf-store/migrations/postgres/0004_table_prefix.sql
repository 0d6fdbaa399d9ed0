-- Every table carries the `aiwaf_` prefix (see the SQLite migration of the same number). The
-- trigger functions name tables in their bodies: they are replaced.
ALTER TABLE blacklist RENAME TO aiwaf_blacklist;
ALTER TABLE exemptions RENAME TO aiwaf_exemptions;
ALTER TABLE keywords RENAME TO aiwaf_keywords;
ALTER TABLE events RENAME TO aiwaf_events;
ALTER TABLE request_log RENAME TO aiwaf_request_log;
ALTER TABLE known_paths RENAME TO aiwaf_known_paths;
ALTER TABLE settings RENAME TO aiwaf_settings;
ALTER TABLE meta RENAME TO aiwaf_meta;
ALTER TABLE training_evidence RENAME TO aiwaf_training_evidence;
ALTER TABLE ban_changes RENAME TO aiwaf_ban_changes;

CREATE OR REPLACE FUNCTION aiwaf_changed() RETURNS trigger AS $$
BEGIN
    UPDATE aiwaf_meta SET value = value + 1 WHERE key = 'generation';
    PERFORM pg_notify('aiwaf_changes_' || current_schema(), TG_TABLE_NAME);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION aiwaf_ban_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO aiwaf_ban_changes (ip) VALUES (OLD.ip);
    ELSE
        INSERT INTO aiwaf_ban_changes (ip) VALUES (NEW.ip);
        IF TG_OP = 'UPDATE' AND OLD.ip <> NEW.ip THEN
            INSERT INTO aiwaf_ban_changes (ip) VALUES (OLD.ip);
        END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION aiwaf_lists_changed() RETURNS trigger AS $$
BEGIN
    UPDATE aiwaf_meta SET value = value + 1 WHERE key = 'lists_generation';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
