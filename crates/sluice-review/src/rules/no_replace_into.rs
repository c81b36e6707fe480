use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoReplaceInto,
    RuleMeta {
        id: "no-replace-into",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "REPLACE deletes and re-inserts conflicting rows: new AUTO_INCREMENT ids, delete triggers and cascades fire",
        advice: "Use INSERT … ON DUPLICATE KEY UPDATE",
        bad: "REPLACE INTO settings (k, v) VALUES ('a', '1');",
        good: "INSERT INTO settings (k, v) VALUES ('a', '1') ON DUPLICATE KEY UPDATE v = VALUES(v);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Insert(i) if i.replace_into => vec![(None, None)],
            _ => vec![],
        }
    }
);
