CREATE TABLE ticket_backups (
    ticket_id TEXT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    target_seq BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    engine TEXT NOT NULL,
    tables TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    position TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, target_seq)
);

CREATE TABLE ticket_backup_chunks (
    ticket_id TEXT NOT NULL,
    target_seq BIGINT NOT NULL,
    chunk BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (ticket_id, target_seq, chunk),
    FOREIGN KEY (ticket_id, target_seq) REFERENCES ticket_backups(ticket_id, target_seq) ON DELETE CASCADE
);
