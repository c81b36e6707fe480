use sqlparser::ast::{AlterTableOperation, Statement};

use super::{BOTH, snake_case};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(ColumnNamePattern, RuleMeta {
    id: "column-name-pattern",
    category: Category::SchemaDesign,
    engines: BOTH,
    level: Level::Warning,
    summary: "the column name is not lower snake_case (^[a-z][a-z0-9_]{0,62}$)",
    advice: "Name columns in lower snake_case",
    bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, CreatedAt TIMESTAMP);",
    good: "CREATE TABLE t (id BIGINT PRIMARY KEY, created_at TIMESTAMP);",
}, |ctx| {
    let cols: Vec<&sqlparser::ast::ColumnDef> = match ctx.stmt {
        Statement::CreateTable(t) => t.columns.iter().collect(),
        Statement::AlterTable(a) => a.operations.iter().filter_map(|o| match o { AlterTableOperation::AddColumn { column_def, .. } => Some(column_def), _ => None }).collect(),
        _ => vec![],
    };
    cols.into_iter().filter(|c| !snake_case(&c.name.value)).map(|c| (ident_at(&c.name), Some(c.name.value.clone()))).collect()
});
