use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::POSTGRES;

file_rule!(
    NoCluster,
    RuleMeta {
        id: "no-cluster",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
        advice: "Use pg_repack to reorder a table online",
        bad: "CLUSTER orders USING orders_pkey;",
        good: "ANALYZE orders;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| { stmts.iter().filter(|s| starts_with_words(&s.upper, &["CLUSTER"])).map(|s| (s.index, None, None)).collect() }
);
