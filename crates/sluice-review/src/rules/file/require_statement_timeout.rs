use crate::finding::Level;
use crate::rule::starts_with_words;
use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;
use crate::rules::file::require_lock_timeout::{setting_value, turns_off};

file_rule!(
    RequireStatementTimeout,
    RuleMeta {
        id: "require-statement-timeout",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "a schema change runs without statement_timeout: a change that takes longer than planned holds its lock for as long as it runs",
        advice: "Start the migration with SET statement_timeout = '5s' (raise it for known long steps)",
        bad: "SET lock_timeout = '1s';\nALTER TABLE orders ADD COLUMN note text;",
        good: "SET lock_timeout = '1s';\nSET statement_timeout = '5s';\nALTER TABLE orders ADD COLUMN note text;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, _settings| {
        let mut set = false;
        // One finding per unguarded stretch (at its first change), not one per statement: the fix is one SET.
        let mut reported = false;
        let mut created: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut out = Vec::new();
        for s in stmts {
            let u = &s.upper;
            if starts_with_words(u, &["SET"]) && u.contains("STATEMENT_TIMEOUT") {
                // A zero (or DEFAULT, which is 0) turns the limit off again.
                set = setting_value(u, "STATEMENT_TIMEOUT").is_some_and(|v| !turns_off(&v));
                reported = false;
            }
            if let Some(t) = &s.facts.created_table {
                created.insert(t.as_str());
            }
            let ddl = starts_with_words(u, &["ALTER", "TABLE"]) || (starts_with_words(u, &["CREATE"]) && u.contains(" INDEX ") && !u.contains("CONCURRENTLY"));
            // Tables created earlier in the file: nothing else holds a lock on them.
            let target = s.facts.altered_table.as_deref().or_else(|| s.facts.indexes.first().map(|(t, _)| t.as_str()));
            let new_table = target.is_some_and(|t| created.contains(t));
            if ddl && !set && !new_table && !reported {
                out.push((s.index, None, None));
                reported = true;
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-statement-timeout").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-statement-timeout").count()
    }

    #[test]
    fn zero_turns_it_off() {
        assert_eq!(fired("SET statement_timeout = 0;\nALTER TABLE t ADD COLUMN c int;", SqlDialect::Postgres), 1);
        assert_eq!(fired("SET statement_timeout TO '10s';\nCREATE INDEX idx_t_c ON t (c);", SqlDialect::Postgres), 0);
    }
}
