-- Managed pipelines scale out: each runs on the one server holding its lease, and keeps its checkpoint here
-- (not in a server's data dir) so that another server can resume it.
CREATE TABLE pipeline_leases (
    pipeline_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);

CREATE TABLE pipeline_checkpoints (
    pipeline_id TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
