-- Incremental backups (issue 12): a run is a `full` or an `incremental`, and an incremental names the
-- backup its changes apply on (set when it finishes: an incremental with no base to build on runs as a full).
ALTER TABLE backup_runs ADD COLUMN level TEXT NOT NULL DEFAULT 'full';
ALTER TABLE backup_runs ADD COLUMN parent_id TEXT;
-- Verification on a policy's own schedule: the slot that queued a run's latest scheduled verification.
ALTER TABLE backup_runs ADD COLUMN verify_scheduled_for BIGINT;
