CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE project_instances (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, instance_id)
);
CREATE INDEX project_instances_instance ON project_instances(instance_id);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    statements TEXT NOT NULL,
    statements_sha256 TEXT NOT NULL,
    approved_sha256 TEXT,
    revision BIGINT NOT NULL,
    run_at BIGINT,
    rollback_of TEXT REFERENCES tickets(id),
    creator TEXT NOT NULL,
    idempotency_key TEXT,
    flow TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (creator, idempotency_key)
);
CREATE INDEX tickets_project ON tickets(project_id, id);
CREATE INDEX tickets_state ON tickets(state, id);
CREATE INDEX tickets_creator ON tickets(creator, id);

CREATE TABLE ticket_targets (
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    instance_id TEXT NOT NULL REFERENCES instances(id),
    database_name TEXT,
    state TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);
CREATE INDEX ticket_targets_instance ON ticket_targets(instance_id, ticket_id);

CREATE TABLE ticket_events (
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    revision BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (ticket_id, seq)
);
CREATE INDEX ticket_events_actor ON ticket_events(actor, kind);

CREATE TABLE ticket_reviews (
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    target_seq BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    warnings BIGINT NOT NULL,
    review TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, revision, target_seq)
);

CREATE TABLE approval_flows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    priority BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    target_seq BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    priority BIGINT NOT NULL,
    state TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    not_before BIGINT NOT NULL,
    outcome TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (ticket_id, revision, target_seq)
);
CREATE INDEX jobs_ready ON jobs(state, priority, not_before);
CREATE INDEX jobs_instance ON jobs(instance_id, state);

CREATE TABLE job_statements (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx BIGINT NOT NULL,
    state TEXT NOT NULL,
    affected_rows BIGINT,
    error TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_id, idx)
);
