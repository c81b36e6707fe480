use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::POSTGRES;

file_rule!(
    ConcurrentlyInTransaction,
    RuleMeta {
        id: "concurrently-in-transaction",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Error,
        summary: "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block",
        advice: "Run it outside BEGIN … COMMIT (migration tools: mark the migration as non-transactional)",
        bad: "BEGIN;\nCREATE INDEX CONCURRENTLY idx_t_a ON t (a);\nCOMMIT;",
        good: "CREATE INDEX CONCURRENTLY idx_t_a ON t (a);",
        ..RuleMeta::DEFAULT
    },
    |stmts, dialect| {
        let mut in_tx = false;
        let mut out = Vec::new();
        for s in stmts {
            let u = &s.upper;
            if starts_with_words(u, &["BEGIN"]) || starts_with_words(u, &["START", "TRANSACTION"]) {
                in_tx = true;
            } else if starts_with_words(u, &["COMMIT"]) || starts_with_words(u, &["ROLLBACK"]) || starts_with_words(u, &["END"]) {
                in_tx = false;
            } else if in_tx
                && (starts_with_words(u, &["CREATE"]) || starts_with_words(u, &["DROP"]) || starts_with_words(u, &["REINDEX"]))
                && crate::code_words::has_word(&crate::code_words::code(s.text, dialect), "CONCURRENTLY", true)
            {
                out.push((s.index, None, None));
            }
        }
        out
    }
);
