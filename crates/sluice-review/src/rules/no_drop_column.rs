use sqlparser::ast::{AlterTableOperation, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoDropColumn,
    RuleMeta {
        id: "no-drop-column",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "dropping a column breaks every query and application version that still reads it, and loses its data",
        advice: "Stop using the column in the application first, back it up, then drop it in a later release",
        bad: "ALTER TABLE orders DROP COLUMN legacy_code;",
        good: "ALTER TABLE orders ADD COLUMN note TEXT;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::DropColumn { column_names, .. } => {
                    Some((None, Some(column_names.iter().map(|c| c.value.clone()).collect::<Vec<_>>().join(", "))))
                }
                _ => None,
            })
            .collect()
    }
);
