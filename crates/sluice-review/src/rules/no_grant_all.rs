use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoGrantAll,
    RuleMeta {
        id: "no-grant-all",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "GRANT ALL gives every privilege, including ones no application needs",
        advice: "Grant the privileges the role needs (SELECT, INSERT, UPDATE, DELETE on named objects)",
        bad: "GRANT ALL PRIVILEGES ON orders TO app;",
        good: "GRANT SELECT, INSERT ON orders TO app;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            sqlparser::ast::Statement::Grant(_) if ctx.code().get(1).and_then(|c| c.word.as_deref()) == Some("ALL") => vec![(None, None)],
            _ => vec![],
        }
    }
);
