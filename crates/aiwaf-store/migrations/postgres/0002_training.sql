-- Findings a training run has already acted on: re-training on the same logs never re-creates
-- or extends a ban (the seed re-banned from old evidence on every run).
CREATE TABLE training_evidence (
    key         TEXT PRIMARY KEY,   -- ip|detector|log time of the finding
    created_at  BIGINT NOT NULL
);
