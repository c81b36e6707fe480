use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NoAlterColumnType,
    RuleMeta {
        id: "no-alter-column-type",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "changing a column's type rewrites the table under an ACCESS EXCLUSIVE lock (except a few binary-compatible widenings)",
        advice: "Add a new column of the new type, backfill in batches, switch, then drop the old column",
        bad: "ALTER TABLE orders ALTER COLUMN amount TYPE numeric(14,2);",
        good: "ALTER TABLE orders ADD COLUMN amount_v2 numeric(14,2);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AlterColumn { column_name, op: AlterColumnOperation::SetDataType { .. } } => {
                    Some((ident_at(column_name), Some(column_name.value.clone())))
                }
                _ => None,
            })
            .collect()
    }
);
