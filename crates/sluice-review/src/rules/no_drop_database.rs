use sqlparser::ast::{ObjectType, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoDropDatabase,
    RuleMeta {
        id: "no-drop-database",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "DROP DATABASE or DROP SCHEMA destroys every object in it",
        advice: "Do this outside change review, with a backup and a named approver",
        bad: "DROP DATABASE shop;",
        good: "SELECT 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, .. } => vec![(None, None)],
            _ => vec![],
        }
    }
);
