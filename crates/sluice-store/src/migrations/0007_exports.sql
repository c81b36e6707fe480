CREATE TABLE ticket_exports (
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    target_seq BIGINT NOT NULL,
    format TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    masked TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, target_seq)
);

CREATE TABLE ticket_export_chunks (
    ticket_id TEXT NOT NULL,
    target_seq BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (ticket_id, target_seq, chunk),
    FOREIGN KEY (ticket_id, target_seq) REFERENCES ticket_exports(ticket_id, target_seq) ON DELETE CASCADE
);

CREATE TABLE export_links (
    token_hash TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    target_seq BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
