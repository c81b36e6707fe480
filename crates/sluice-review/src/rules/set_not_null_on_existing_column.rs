use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    SetNotNullOnExistingColumn,
    RuleMeta {
        id: "set-not-null-on-existing-column",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
        advice: "Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan)",
        bad: "ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;",
        good: "ALTER TABLE orders ADD CONSTRAINT customer_id_not_null CHECK (customer_id IS NOT NULL) NOT VALID;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|op| match op {
                AlterTableOperation::AlterColumn { column_name, op: AlterColumnOperation::SetNotNull } => {
                    Some((crate::rule::ident_at(column_name), Some(column_name.to_string())))
                }
                _ => None,
            })
            .collect()
    }
);
