use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::POSTGRES;

file_rule!(
    RequireLockTimeout,
    RuleMeta {
        id: "require-lock-timeout",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "a schema change runs without lock_timeout: waiting behind a long query, it blocks every other query on the table",
        advice: "Start the migration with SET lock_timeout = '2s' (and retry on timeout)",
        bad: "ALTER TABLE orders ADD COLUMN note text;",
        good: "SET lock_timeout = '2s';\nALTER TABLE orders ADD COLUMN note text;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| { unguarded_stretches(stmts, "LOCK_TIMEOUT").into_iter().map(|i| (i, None, None)).collect() }
);

/// The first schema change of each stretch of the file run without a positive `setting` (`LOCK_TIMEOUT`,
/// `STATEMENT_TIMEOUT`): one finding per stretch, since the fix is one SET. Changes to tables created earlier in
/// the file do not count (nothing else holds a lock on them).
pub(crate) fn unguarded_stretches(stmts: &[crate::rule::StmtView<'_>], setting: &str) -> Vec<usize> {
    let mut set = false;
    // One finding per unguarded stretch (at its first change), not one per statement: the fix is one SET.
    let mut reported = false;
    let mut created: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in stmts {
        let u = &s.upper;
        if starts_with_words(u, &["SET"]) && u.contains(setting) {
            // A zero (or DEFAULT, which is 0) turns the limit off again.
            set = setting_value(u, setting).is_some_and(|v| !turns_off(&v));
            reported = false;
        }
        if let Some(t) = &s.facts.created_table {
            created.insert(t.as_str());
        }
        let ddl = starts_with_words(u, &["ALTER", "TABLE"]) || (starts_with_words(u, &["CREATE"]) && u.contains(" INDEX ") && !u.contains("CONCURRENTLY"));
        // Tables created earlier in the file: nothing else holds a lock on them.
        let target = s.facts.altered_table.as_deref().or_else(|| s.facts.indexes.first().map(|i| i.table.as_str()));
        let new_table = target.is_some_and(|t| created.contains(t));
        if ddl && !set && !new_table && !reported {
            out.push(s.index);
            reported = true;
        }
    }
    out
}

/// The value after `NAME [=|TO]` (an upper-cased setting name) in an upper-cased SET statement, without quotes.
pub(crate) fn setting_value(upper: &str, name: &str) -> Option<String> {
    let rest = &upper[upper.find(name)? + name.len()..];
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix("TO ")).unwrap_or(rest).trim_start();
    let value: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != ';').collect();
    let value = value.trim_matches(|c| c == '\'' || c == '"').to_string();
    (!value.is_empty()).then_some(value)
}

/// Whether a lock_timeout value disables the limit: 0 in any unit, or DEFAULT (PostgreSQL's default is 0).
pub(crate) fn turns_off(value: &str) -> bool {
    value == "DEFAULT" || value.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim().parse::<f64>().is_ok_and(|n| n == 0.0)
}

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fires(sql: &str) -> bool {
        crate::review(sql, SqlDialect::Postgres).findings.iter().any(|f| f.rule == "require-lock-timeout")
    }

    #[test]
    fn a_zero_or_default_lock_timeout_is_no_lock_timeout() {
        assert!(!fires("SET lock_timeout = '2s';\nALTER TABLE orders ADD COLUMN note text;"));
        assert!(!fires("SET LOCAL lock_timeout TO 500;\nALTER TABLE orders ADD COLUMN note text;"));
        assert!(fires("SET lock_timeout = 0;\nALTER TABLE orders ADD COLUMN note text;"));
        assert!(fires("SET lock_timeout = '0s';\nALTER TABLE orders ADD COLUMN note text;"));
        assert!(fires("SET lock_timeout TO DEFAULT;\nALTER TABLE orders ADD COLUMN note text;"));
        assert!(fires("SET lock_timeout = '2s';\nSET lock_timeout = 0;\nALTER TABLE orders ADD COLUMN note text;"), "turned off again");
    }

    #[test]
    fn once_per_unguarded_stretch_and_not_for_new_tables() {
        let count = |sql: &str| crate::review(sql, SqlDialect::Postgres).findings.iter().filter(|f| f.rule == "require-lock-timeout").count();
        assert_eq!(count("ALTER TABLE a ADD COLUMN x int;\nALTER TABLE b ADD COLUMN y int;\nCREATE INDEX idx_c ON c (z);"), 1);
        assert_eq!(count("CREATE TABLE a (id int PRIMARY KEY);\nALTER TABLE ONLY a ADD CONSTRAINT a_u UNIQUE (id);\nCREATE INDEX idx_a ON a (id);"), 0);
        assert_eq!(count("ALTER TABLE a ADD COLUMN x int;\nSET lock_timeout = '1s';\nSET lock_timeout = 0;\nALTER TABLE b ADD COLUMN y int;"), 2);
    }
}
