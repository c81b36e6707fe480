-- Alerting (issue 13): rules, the alerts they raise with their lifecycle state (kept here so a restart
-- neither re-pages nor loses a resolve), and silences.
CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    rule_id TEXT,
    rule_name TEXT NOT NULL,
    source TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    value DOUBLE PRECISION,
    active_since BIGINT NOT NULL,
    fired_at BIGINT,
    resolved_at BIGINT,
    updated_at BIGINT NOT NULL,
    notified_state TEXT,
    notified_at BIGINT
);
CREATE INDEX alerts_by_rule ON alerts(rule_id, state);
CREATE INDEX alerts_by_state ON alerts(state, updated_at);

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
