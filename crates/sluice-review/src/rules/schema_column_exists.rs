use sqlparser::ast::{AlterTableOperation, AssignmentTarget, Statement};

use super::BOTH;
use super::file::schema_table_exists::target_tables;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Columns a statement writes or drops by name, lower-cased.
fn named_columns(stmt: &Statement) -> Vec<String> {
    match stmt {
        Statement::Update(u) => u
            .assignments
            .iter()
            .filter_map(|a| match &a.target {
                AssignmentTarget::ColumnName(n) => n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Statement::Insert(i) => i.columns.iter().map(|c| c.to_string().trim_matches(['`', '"']).to_ascii_lowercase()).collect(),
        Statement::AlterTable(a) => a
            .operations
            .iter()
            .flat_map(|o| match o {
                AlterTableOperation::DropColumn { column_names, .. } => column_names.iter().map(|c| c.value.to_ascii_lowercase()).collect(),
                AlterTableOperation::ModifyColumn { col_name, .. } => vec![col_name.value.to_ascii_lowercase()],
                AlterTableOperation::ChangeColumn { old_name, .. } => vec![old_name.value.to_ascii_lowercase()],
                AlterTableOperation::RenameColumn { old_column_name, .. } => vec![old_column_name.value.to_ascii_lowercase()],
                AlterTableOperation::AlterColumn { column_name, .. } => vec![column_name.value.to_ascii_lowercase()],
                _ => vec![],
            })
            .collect(),
        _ => vec![],
    }
}

rule!(
    SchemaColumnExists,
    RuleMeta {
        id: "schema-column-exists",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the statement names a column that the table does not have in the target database",
        advice: "Check the column name (schema-aware: needs --schema-from)",
        bad: "UPDATE orders SET colour = 'red' WHERE id = 1;",
        good: "UPDATE orders SET status = 'paid' WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        let Some(table) = target_tables(ctx.stmt).into_iter().next() else { return vec![] };
        let Some(info) = schema.tables.get(&table) else { return vec![] };
        named_columns(ctx.stmt).into_iter().filter(|c| !info.columns.contains(c)).map(|c| (None, Some(format!("{table}.{c}")))).collect()
    }
);
