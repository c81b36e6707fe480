use crate::finding::Level;
use crate::rule::{Category, RuleMeta, starts_with_words};
use crate::rules::MYSQL;

file_rule!(
    NoOptimizeTable,
    RuleMeta {
        id: "no-optimize-table",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "OPTIMIZE TABLE rebuilds the table (a full copy on InnoDB) and can block writes at its start and end",
        advice: "Run it in a maintenance window, or with an online schema-change tool",
        bad: "OPTIMIZE TABLE orders;",
        good: "ANALYZE TABLE orders;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| { stmts.iter().filter(|s| starts_with_words(&s.upper, &["OPTIMIZE"])).map(|s| (s.index, None, None)).collect() }
);
