use sqlparser::ast::{AlterTableOperation, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoRenameColumn,
    RuleMeta {
        id: "no-rename-column",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "renaming a column breaks every running application version that uses the old name",
        advice: "Add the new column, write both, backfill, switch readers, then drop the old one",
        bad: "ALTER TABLE orders RENAME COLUMN amount TO total;",
        good: "ALTER TABLE orders ADD COLUMN total DECIMAL(12,2);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                    Some((crate::rule::ident_at(old_column_name), Some(format!("{old_column_name} → {new_column_name}"))))
                }
                AlterTableOperation::ChangeColumn { old_name, new_name, .. } if old_name.value != new_name.value => {
                    Some((crate::rule::ident_at(old_name), Some(format!("{old_name} → {new_name}"))))
                }
                _ => None,
            })
            .collect()
    }
);
