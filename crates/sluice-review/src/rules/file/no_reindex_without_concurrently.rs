use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::POSTGRES;

file_rule!(
    NoReindexWithoutConcurrently,
    RuleMeta {
        id: "no-reindex-without-concurrently",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "REINDEX without CONCURRENTLY blocks writes (and reads that use the index) while it runs",
        advice: "Use REINDEX … CONCURRENTLY (PostgreSQL 12+)",
        bad: "REINDEX INDEX orders_pkey;",
        good: "REINDEX INDEX CONCURRENTLY orders_pkey;",
        ..RuleMeta::DEFAULT
    },
    |stmts, dialect| {
        stmts
            .iter()
            .filter(|s| {
                starts_with_words(&s.upper, &["REINDEX"]) && !crate::code_words::has_word(&crate::code_words::code(s.text, dialect), "CONCURRENTLY", false)
            })
            .map(|s| (s.index, None, None))
            .collect()
    }
);
