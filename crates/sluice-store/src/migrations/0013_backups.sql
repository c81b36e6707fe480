-- Backups (issue 12): repositories (their configuration, with its secrets, encrypted), the data keys that
-- seal each repository's files (wrapped by the master key), policies, and the runs that are both the queue
-- (queued → running under a lease) and the catalog (done or failed, verified or not).
CREATE TABLE backup_repositories (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE backup_keys (
    id TEXT PRIMARY KEY,
    repository_id TEXT NOT NULL REFERENCES backup_repositories(id) ON DELETE CASCADE,
    key_enc TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When a newer key took over for new backups; older backups keep opening with this one.
    retired_at BIGINT
);

CREATE TABLE backup_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE backup_runs (
    id TEXT PRIMARY KEY,
    policy_id TEXT,
    instance_id TEXT NOT NULL,
    repository_id TEXT NOT NULL REFERENCES backup_repositories(id),
    method TEXT NOT NULL,
    trigger TEXT NOT NULL,
    -- The schedule slot a scheduled run fills: one run per policy, instance and slot, whichever server
    -- schedules it first.
    scheduled_for BIGINT,
    state TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    progress TEXT,
    error TEXT,
    plain_bytes BIGINT,
    stored_bytes BIGINT,
    manifest TEXT,
    manifest_sha256 TEXT,
    key_id TEXT,
    verify_state TEXT NOT NULL,
    verify_lease_owner TEXT,
    verify_lease_until BIGINT,
    verified_at BIGINT,
    verify_error TEXT,
    pinned BIGINT NOT NULL,
    deleted_at BIGINT,
    requested_by TEXT,
    UNIQUE (policy_id, instance_id, scheduled_for)
);
CREATE INDEX backup_runs_state ON backup_runs(state, created_at);
CREATE INDEX backup_runs_instance ON backup_runs(instance_id, state);
