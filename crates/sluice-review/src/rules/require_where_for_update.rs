use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireWhereForUpdate,
    RuleMeta {
        id: "require-where-for-update",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "UPDATE without WHERE changes every row of the table",
        advice: "Add a WHERE clause that selects the rows to change",
        bad: "UPDATE orders SET status = 'paid';",
        good: "UPDATE orders SET status = 'paid' WHERE id = 42;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Update(u) if u.selection.is_none() && u.from.is_none() => vec![(None, None)],
            _ => vec![],
        }
    }
);
