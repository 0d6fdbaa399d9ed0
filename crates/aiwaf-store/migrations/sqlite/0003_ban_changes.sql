-- Incremental reloads. Every change to the blacklist is logged by address, so running servers
-- apply new and lifted bans one by one instead of reloading every ban: under an attack that
-- makes a ban a second, each instance used to re-read the whole list each time. The other
-- lists change rarely (an operator, a training run): they bump `lists_generation`, and a
-- server that sees it change reloads everything.
CREATE TABLE ban_changes (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ip   TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('lists_generation', 0);

CREATE TRIGGER blacklist_ins_log AFTER INSERT ON blacklist BEGIN INSERT INTO ban_changes (ip) VALUES (NEW.ip); END;
CREATE TRIGGER blacklist_upd_log AFTER UPDATE ON blacklist BEGIN
    INSERT INTO ban_changes (ip) VALUES (NEW.ip);
    INSERT INTO ban_changes (ip) SELECT OLD.ip WHERE OLD.ip <> NEW.ip;
END;
CREATE TRIGGER blacklist_del_log AFTER DELETE ON blacklist BEGIN INSERT INTO ban_changes (ip) VALUES (OLD.ip); END;
CREATE TRIGGER exemptions_ins_gen AFTER INSERT ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER exemptions_upd_gen AFTER UPDATE ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER exemptions_del_gen AFTER DELETE ON exemptions BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER keywords_ins_gen AFTER INSERT ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER keywords_upd_gen AFTER UPDATE ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER keywords_del_gen AFTER DELETE ON keywords BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER settings_ins_gen AFTER INSERT ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER settings_upd_gen AFTER UPDATE ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
CREATE TRIGGER settings_del_gen AFTER DELETE ON settings BEGIN UPDATE meta SET value = value + 1 WHERE key = 'lists_generation'; END;
