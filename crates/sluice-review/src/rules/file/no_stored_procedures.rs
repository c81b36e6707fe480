use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    NoStoredProcedures,
    RuleMeta {
        id: "no-stored-procedures",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "stored procedures and functions keep logic where reviews, tests and deploys rarely look",
        advice: "Keep business logic in the application unless your policy says otherwise",
        bad: "CREATE PROCEDURE purge_old() BEGIN DELETE FROM logs WHERE id < 10; END;",
        good: "DELETE FROM logs WHERE id < 10;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        stmts
            .iter()
            .filter(|s| {
                let mut w = s.upper.split_whitespace().filter(|w| !matches!(*w, "OR" | "REPLACE") && !w.starts_with("DEFINER"));
                w.next() == Some("CREATE") && matches!(w.next(), Some("PROCEDURE" | "FUNCTION"))
            })
            .map(|s| (s.index, None, None))
            .collect()
    }
);
