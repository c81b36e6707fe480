use sqlparser::ast::{ObjectType, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoDropTable,
    RuleMeta {
        id: "no-drop-table",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "DROP TABLE destroys the table and its data",
        advice: "Rename it first and drop it after a grace period, or back it up; acknowledge with an ignore comment",
        bad: "DROP TABLE old_orders;",
        good: "ALTER TABLE old_orders RENAME TO old_orders_deprecated;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Drop { object_type: ObjectType::Table, names, .. } => {
                let list: Vec<String> = names.iter().map(ToString::to_string).collect();
                vec![(None, Some(list.join(", ")))]
            }
            _ => vec![],
        }
    }
);
