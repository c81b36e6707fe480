use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoMultiTableDml,
    RuleMeta {
        id: "no-multi-table-dml",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "an UPDATE or DELETE that joins several tables is hard to review and to roll back, and may touch more rows than meant",
        advice: "Select the keys first, then change one table by key",
        bad: "UPDATE orders SET status = 1 FROM users WHERE users.id = orders.user_id AND users.banned;",
        good: "DELETE FROM orders WHERE user_id IN (1, 2, 3);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Delete(d) if d.using.is_some() || d.tables.len() > 1 || !d.tables.is_empty() => vec![(None, None)],
            Statement::Update(u) if u.from.is_some() || !u.table.joins.is_empty() => vec![(None, None)],
            _ => vec![],
        }
    }
);
