-- Every table carries the `aiwaf_` prefix: the store may live in an application's own database
-- (the Django package puts it there), beside tables named `settings`, `events` or `meta`.
-- SQLite rewrites the triggers' references to renamed tables itself.
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
