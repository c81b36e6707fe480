use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoTruncate,
    RuleMeta {
        id: "no-truncate",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "TRUNCATE removes every row at once and cannot be rolled back on MySQL",
        advice: "Delete in batches with a WHERE clause, or take a backup first and acknowledge with an ignore comment",
        bad: "TRUNCATE TABLE sessions;",
        good: "DELETE FROM sessions WHERE expires_at < '2024-01-01';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Truncate(_) => vec![(None, None)],
            _ => vec![],
        }
    }
);
