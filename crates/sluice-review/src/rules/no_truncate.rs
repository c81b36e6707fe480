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
            // MySQL's `ALTER TABLE t TRUNCATE PARTITION p` empties the partition the same way.
            Statement::AlterTable(_) if ctx.dialect == crate::SqlDialect::MySql => {
                let code = ctx.code();
                let truncates = code.windows(2).any(|w| w[0].depth == 0 && w[0].word.as_deref() == Some("TRUNCATE") && w[1].word.as_deref() == Some("PARTITION"));
                if truncates { vec![(None, Some("TRUNCATE PARTITION".into()))] } else { vec![] }
            }
            _ => vec![],
        }
    }
);
