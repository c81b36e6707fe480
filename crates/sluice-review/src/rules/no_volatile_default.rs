use sqlparser::ast::{AlterTableOperation, ColumnOption, Expr, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

const VOLATILE: &[&str] = &["random", "clock_timestamp", "gen_random_uuid", "uuid_generate_v4", "uuid_generate_v1", "nextval", "timeofday", "txid_current"];

rule!(
    NoVolatileDefault,
    RuleMeta {
        id: "no-volatile-default",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "adding a column whose default is volatile rewrites the whole table under an ACCESS EXCLUSIVE lock",
        advice: "Add the column without a default (or with a constant), set the default afterwards, and backfill in batches",
        bad: "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        good: "ALTER TABLE orders ADD COLUMN token uuid;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AddColumn { column_def, .. } => column_def.options.iter().find_map(|opt| match &opt.option {
                    ColumnOption::Default(Expr::Function(f)) if VOLATILE.contains(&f.name.to_string().to_ascii_lowercase().as_str()) => {
                        Some((ident_at(&column_def.name), Some(format!("{} DEFAULT {}()", column_def.name, f.name))))
                    }
                    _ => None,
                }),
                _ => None,
            })
            .collect()
    }
);
