use sqlparser::ast::{AlterTableOperation, Ident, Statement};

use super::BOTH;
use super::file::schema_table_exists::target_tables;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    SchemaDroppedColumnReferenced,
    RuleMeta {
        id: "schema-dropped-column-referenced",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the column being dropped (or, on MySQL/MariaDB, renamed) is still used by a view or another table's foreign key",
        advice: "Change or drop the view or foreign key first (schema-aware: needs --schema-from)",
        bad: "ALTER TABLE orders DROP COLUMN user_id;",
        good: "ALTER TABLE orders DROP COLUMN note;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        let Some(info) = target_tables(ctx.stmt).into_iter().next().and_then(|t| schema.tables.get(&t)) else { return vec![] };
        // PostgreSQL carries a rename into its views and foreign keys (they hold column numbers); MySQL/MariaDB
        // views keep the old name and break.
        let renames_break = ctx.dialect == crate::SqlDialect::MySql;
        let touched: Vec<&Ident> = a
            .operations
            .iter()
            .flat_map(|o| match o {
                AlterTableOperation::DropColumn { column_names, .. } => column_names.iter().collect(),
                AlterTableOperation::RenameColumn { old_column_name, .. } if renames_break => vec![old_column_name],
                AlterTableOperation::ChangeColumn { old_name, new_name, .. } if renames_break && old_name.value != new_name.value => vec![old_name],
                _ => vec![],
            })
            .collect();
        touched
            .into_iter()
            .filter_map(|col| {
                let users = info.referenced_by.get(&col.value.to_ascii_lowercase())?;
                Some((crate::rule::ident_at(col), Some(format!("{} is used by {}", col.value, users.join(", ")))))
            })
            .collect()
    }
);
