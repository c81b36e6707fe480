use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoLimitWithoutOrderBy,
    RuleMeta {
        id: "no-limit-without-order-by",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "UPDATE or DELETE with LIMIT but no ORDER BY affects an unspecified set of rows (and is unsafe for statement-based replication)",
        advice: "Add ORDER BY on a unique key, or select the rows by key",
        bad: "DELETE FROM logs WHERE level = 'debug' LIMIT 1000;",
        good: "DELETE FROM logs WHERE level = 'debug' ORDER BY id LIMIT 1000;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Delete(d) if d.limit.is_some() && d.order_by.is_empty() => vec![(None, None)],
            Statement::Update(u) if u.limit.is_some() && u.order_by.is_empty() => vec![(None, None)],
            _ => vec![],
        }
    }
);
