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
    },
    |stmts, _dialect| {
        let mut set = false;
        let mut out = Vec::new();
        for s in stmts {
            let u = &s.upper;
            if starts_with_words(u, &["SET"]) && u.contains("LOCK_TIMEOUT") {
                set = true;
            }
            let ddl = starts_with_words(u, &["ALTER", "TABLE"]) || (starts_with_words(u, &["CREATE"]) && u.contains(" INDEX ") && !u.contains("CONCURRENTLY"));
            if ddl && !set {
                out.push((s.index, None, None));
            }
        }
        out
    }
);
