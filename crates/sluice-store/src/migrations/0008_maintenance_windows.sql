CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    instance_id TEXT REFERENCES instances(id) ON DELETE CASCADE,
    environment TEXT,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
