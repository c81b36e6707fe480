use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    NoTriggers,
    RuleMeta {
        id: "no-triggers",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "triggers hide writes from reviewers and break online schema-change tools that use triggers themselves",
        advice: "Do the work in the application or with change capture",
        bad: "CREATE TRIGGER t_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit();",
        good: "CREATE TABLE order_audit (id bigint PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        stmts
            .iter()
            .filter(|s| {
                let mut w = s.upper.split_whitespace().filter(|w| !matches!(*w, "OR" | "REPLACE" | "CONSTRAINT") && !w.starts_with("DEFINER"));
                w.next() == Some("CREATE") && w.next() == Some("TRIGGER")
            })
            .map(|s| (s.index, None, None))
            .collect()
    }
);
