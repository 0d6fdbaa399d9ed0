-- Incremental reloads (see the SQLite migration of the same number): the blacklist's changes
-- logged by address; the other lists bump `lists_generation`.
CREATE TABLE ban_changes (
    id   BIGSERIAL PRIMARY KEY,
    ip   TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('lists_generation', 0);

CREATE FUNCTION aiwaf_ban_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO ban_changes (ip) VALUES (OLD.ip);
    ELSE
        INSERT INTO ban_changes (ip) VALUES (NEW.ip);
        IF TG_OP = 'UPDATE' AND OLD.ip <> NEW.ip THEN
            INSERT INTO ban_changes (ip) VALUES (OLD.ip);
        END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER blacklist_logged AFTER INSERT OR UPDATE OR DELETE ON blacklist FOR EACH ROW EXECUTE FUNCTION aiwaf_ban_changed();

CREATE FUNCTION aiwaf_lists_changed() RETURNS trigger AS $$
BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'lists_generation';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER exemptions_lists_changed AFTER INSERT OR UPDATE OR DELETE ON exemptions FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_lists_changed();
CREATE TRIGGER keywords_lists_changed AFTER INSERT OR UPDATE OR DELETE ON keywords FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_lists_changed();
CREATE TRIGGER settings_lists_changed AFTER INSERT OR UPDATE OR DELETE ON settings FOR EACH STATEMENT EXECUTE FUNCTION aiwaf_lists_changed();
