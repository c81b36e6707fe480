use crate::finding::Level;

use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;
use crate::rules::file::require_lock_timeout::unguarded_stretches;

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
    |stmts, _dialect, _settings| { unguarded_stretches(stmts, "STATEMENT_TIMEOUT").into_iter().map(|i| (i, None, None)).collect() }
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
