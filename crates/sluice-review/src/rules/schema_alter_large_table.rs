use sqlparser::ast::Statement;

use super::BOTH;
use super::file::schema_table_exists::target_tables;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Rows above which an ALTER is flagged (policy: `[params.schema-alter-large-table] max = N`).
const MAX_ROWS: usize = 1_000_000;
const MAX_BYTES: u64 = 1 << 30;

rule!(
    SchemaAlterLargeTable,
    RuleMeta {
        id: "schema-alter-large-table",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "the ALTER targets a table with more than 1,000,000 rows or 1 GiB, where a rebuild or lock lasts long",
        advice: "Use an online schema-change tool or an instant/concurrent form, in a maintenance window (schema-aware: needs --schema-from)",
        bad: "ALTER TABLE orders ADD COLUMN note2 TEXT;",
        good: "ALTER TABLE small_table ADD COLUMN note2 TEXT;",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "1000000 rows", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        if !matches!(ctx.stmt, Statement::AlterTable(_)) {
            return vec![];
        }
        let max_rows = ctx.settings.int(META.id, "max", MAX_ROWS) as u64;
        target_tables(ctx.stmt)
            .into_iter()
            .filter_map(|t| {
                schema
                    .tables
                    .get(&t)
                    .filter(|i| i.rows > max_rows || i.bytes > MAX_BYTES)
                    .map(|i| (None, Some(format!("{t}: about {} rows, {} MiB", i.rows, i.bytes >> 20))))
            })
            .collect()
    }
);
