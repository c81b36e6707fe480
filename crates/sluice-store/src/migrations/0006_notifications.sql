CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    url_enc TEXT NOT NULL,
    url_host TEXT NOT NULL,
    secret_enc TEXT,
    events TEXT NOT NULL,
    project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id TEXT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_created ON outbox(created_at);

CREATE TABLE deliveries (
    event_id TEXT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    delivered_at BIGINT,
    PRIMARY KEY (event_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries(state, next_at);
