use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::BOTH;

file_rule!(
    NoLockTables,
    RuleMeta {
        id: "no-lock-tables",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "explicit table locks block every other session for as long as the script holds them",
        advice: "Rely on row locks inside a transaction; if a lock is truly needed, keep it short and set a timeout",
        bad: "LOCK TABLES orders WRITE;",
        good: "SELECT id FROM orders WHERE id = 1 FOR UPDATE;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        stmts
            .iter()
            .filter(|s| starts_with_words(&s.upper, &["LOCK", "TABLES"]) || starts_with_words(&s.upper, &["LOCK", "TABLE"]))
            .map(|s| (s.index, None, None))
            .collect()
    }
);
