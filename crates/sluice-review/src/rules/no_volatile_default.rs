use sqlparser::ast::{ColumnOption, Expr, GeneratedExpressionMode, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

/// Functions PostgreSQL evaluates once for an ADD COLUMN (stable or immutable): a default calling any
/// other function — volatile ones such as `random()`, `gen_random_uuid()`, `clock_timestamp()`, or one the
/// review cannot know, such as a user's `uuid()` — is computed for every existing row, rewriting the table.
const STABLE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "transaction_timestamp",
    "statement_timestamp",
    "current_user",
    "session_user",
    "current_setting",
    "to_timestamp",
    "to_date",
    "lower",
    "upper",
    "coalesce",
    "make_interval",
    "jsonb_build_object",
    "json_build_object",
    "array",
];

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
        if matches!(ctx.stmt, Statement::AlterTable(a) if ctx.is_new_table(&a.name)) {
            return vec![];
        }
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| c.how == super::columns::How::Add)
            .filter_map(|c| {
                let stored = c.has(|o| matches!(o, ColumnOption::Generated { generation_expr_mode: Some(GeneratedExpressionMode::Stored), .. }));
                if stored {
                    return Some((ident_at(c.name), Some(format!("{} is a stored generated column, computed for every row", c.name))));
                }
                match c.default() {
                    Some(Expr::Function(f)) if !STABLE.contains(&crate::rules::last_ident(&f.name).to_ascii_lowercase().as_str()) => {
                        Some((ident_at(c.name), Some(format!("{} DEFAULT {}()", c.name, f.name))))
                    }
                    _ => None,
                }
            })
            .collect()
    }
);
