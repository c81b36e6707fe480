use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    InsertRequiresColumnList,
    RuleMeta {
        id: "insert-requires-column-list",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "INSERT without a column list breaks, or writes values into the wrong columns, when the table changes",
        advice: "Name the columns: INSERT INTO t (a, b) VALUES (…)",
        bad: "INSERT INTO orders VALUES (1, 'new');",
        good: "INSERT INTO orders (id, status) VALUES (1, 'new');",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Insert(i) if i.columns.is_empty() && i.source.is_some() => vec![(None, None)],
            _ => vec![],
        }
    }
);
