//! Embedded schema migrations: one list for both backends. A migration is plain SQL that both SQLite and
//! PostgreSQL accept (TEXT, BIGINT; ids are application-made UUIDv7 text, times are unix milliseconds), plus
//! an optional backend-specific part where the dialects differ (triggers).

use crate::Backend;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub common: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        common: include_str!("migrations/0001_foundation.sql"),
        sqlite: include_str!("migrations/0001_foundation.sqlite.sql"),
        postgres: include_str!("migrations/0001_foundation.postgres.sql"),
    },
    Migration { version: 2, name: "pipelines", common: include_str!("migrations/0002_pipelines.sql"), sqlite: "", postgres: "" },
    Migration { version: 3, name: "instance_tls_ca", common: include_str!("migrations/0003_instance_tls_ca.sql"), sqlite: "", postgres: "" },
    Migration { version: 4, name: "projects_tickets", common: include_str!("migrations/0004_projects_tickets.sql"), sqlite: "", postgres: "" },
    Migration { version: 5, name: "ticket_backups", common: include_str!("migrations/0005_ticket_backups.sql"), sqlite: "", postgres: "" },
    Migration { version: 6, name: "notifications", common: include_str!("migrations/0006_notifications.sql"), sqlite: "", postgres: "" },
    Migration { version: 7, name: "exports", common: include_str!("migrations/0007_exports.sql"), sqlite: "", postgres: "" },
    Migration { version: 8, name: "maintenance_windows", common: include_str!("migrations/0008_maintenance_windows.sql"), sqlite: "", postgres: "" },
    Migration { version: 9, name: "ticket_generation", common: include_str!("migrations/0009_ticket_generation.sql"), sqlite: "", postgres: "" },
    Migration { version: 10, name: "statement_plans", common: include_str!("migrations/0010_statement_plans.sql"), sqlite: "", postgres: "" },
    // The tickets' generation moved into memory, kept coherent across servers by LISTEN/NOTIFY (`cache`).
    Migration { version: 11, name: "drop_ticket_generation", common: include_str!("migrations/0011_drop_ticket_generation.sql"), sqlite: "", postgres: "" },
    Migration { version: 12, name: "pipeline_leases", common: include_str!("migrations/0012_pipeline_leases.sql"), sqlite: "", postgres: "" },
    Migration { version: 13, name: "backups", common: include_str!("migrations/0013_backups.sql"), sqlite: "", postgres: "" },
    Migration { version: 14, name: "backup_levels", common: include_str!("migrations/0014_backup_levels.sql"), sqlite: "", postgres: "" },
    Migration { version: 15, name: "alerts", common: include_str!("migrations/0015_alerts.sql"), sqlite: "", postgres: "" },
];

pub(crate) const LATEST: i64 = 15;

impl Migration {
    pub fn sql_for(&self, backend: Backend) -> [&'static str; 2] {
        match backend {
            Backend::Sqlite => [self.common, self.sqlite],
            Backend::Postgres => [self.common, self.postgres],
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_contiguous_and_latest_is_last() {
        for (i, m) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(super::MIGRATIONS.last().unwrap().version, super::LATEST);
    }
}
