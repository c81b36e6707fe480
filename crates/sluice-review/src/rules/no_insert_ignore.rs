use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoInsertIgnore,
    RuleMeta {
        id: "no-insert-ignore",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "INSERT IGNORE turns errors (bad values, truncation, duplicates) into warnings nobody reads",
        advice: "Handle duplicates with ON DUPLICATE KEY UPDATE and let other errors fail",
        bad: "INSERT IGNORE INTO t (id) VALUES (1);",
        good: "INSERT INTO t (id) VALUES (1) ON DUPLICATE KEY UPDATE id = id;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Insert(i) if i.ignore => vec![(None, None)],
            _ => vec![],
        }
    }
);
