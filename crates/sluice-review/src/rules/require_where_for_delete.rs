use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireWhereForDelete,
    RuleMeta {
        id: "require-where-for-delete",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "DELETE without WHERE removes every row of the table",
        advice: "Add a WHERE clause; to empty a table on purpose, say so with an ignore comment",
        bad: "DELETE FROM orders;",
        good: "DELETE FROM orders WHERE id = 42;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Delete(d) if d.selection.is_none() && d.using.is_none() => vec![(None, None)],
            _ => vec![],
        }
    }
);
