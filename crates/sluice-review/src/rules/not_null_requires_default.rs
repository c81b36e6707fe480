use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NotNullRequiresDefault,
    RuleMeta {
        id: "not-null-requires-default",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "adding a NOT NULL column without a DEFAULT fails on a non-empty table (PostgreSQL) or silently fills zero values (MySQL)",
        advice: "Give the column a DEFAULT, or add it nullable, backfill, then set NOT NULL",
        bad: "ALTER TABLE orders ADD COLUMN region VARCHAR(8) NOT NULL;",
        good: "ALTER TABLE orders ADD COLUMN region VARCHAR(8) NOT NULL DEFAULT 'eu';",
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AddColumn { column_def, .. } => {
                    let not_null = column_def.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull));
                    let default = column_def.options.iter().any(|o| matches!(o.option, ColumnOption::Default(_) | ColumnOption::Generated { .. }));
                    (not_null && !default).then(|| (ident_at(&column_def.name), Some(column_def.name.value.clone())))
                }
                _ => None,
            })
            .collect()
    }
);
