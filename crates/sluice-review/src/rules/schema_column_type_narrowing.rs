use sqlparser::ast::{AlterTableOperation, Statement};

use super::MYSQL;
use super::file::schema_table_exists::target_tables;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// (family, size) of a type for comparing widths: lengths of character types, byte widths of integers.
fn width(t: &str) -> Option<(&'static str, u64)> {
    let t = t.to_ascii_lowercase();
    let len = || t.split('(').nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.split(',').next()).and_then(|n| n.trim().parse::<u64>().ok());
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "varchar" | "char" | "varbinary" | "binary" | "character" => len().map(|n| ("chars", n)),
        "tinyint" => Some(("int", 1)),
        "smallint" => Some(("int", 2)),
        "mediumint" => Some(("int", 3)),
        "int" | "integer" => Some(("int", 4)),
        "bigint" => Some(("int", 8)),
        "decimal" | "numeric" => len().map(|n| ("decimal", n)),
        _ => None,
    }
}

rule!(
    SchemaColumnTypeNarrowing,
    RuleMeta {
        id: "schema-column-type-narrowing",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Error,
        summary: "the new column type is narrower than the current one: existing values are truncated or the ALTER fails half way",
        advice: "Check the longest stored value first; keep the width or widen it (schema-aware: needs --schema-from)",
        bad: "ALTER TABLE orders MODIFY COLUMN status VARCHAR(8);",
        good: "ALTER TABLE orders MODIFY COLUMN status VARCHAR(64);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        let Some(info) = target_tables(ctx.stmt).into_iter().next().and_then(|t| schema.tables.get(&t)) else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::ModifyColumn { col_name, data_type, .. } => Some((col_name, data_type)),
                AlterTableOperation::ChangeColumn { old_name, data_type, .. } => Some((old_name, data_type)),
                _ => None,
            })
            .filter_map(|(col, new)| {
                let old = info.column_types.get(&col.value.to_ascii_lowercase())?;
                let (of, ow) = width(old)?;
                let (nf, nw) = width(&new.to_string())?;
                (of == nf && nw < ow).then(|| (crate::rule::ident_at(col), Some(format!("{}: {old} → {new}", col.value))))
            })
            .collect()
    }
);
