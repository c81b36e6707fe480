use sqlparser::ast::{AlterTableOperation, Statement};

use super::BOTH;
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z][a-z0-9_]{0,62}$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    ColumnNamePattern,
    RuleMeta {
        id: "column-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the column name does not match the naming pattern (default: lower snake_case)",
        advice: "Name columns in lower snake_case",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, CreatedAt TIMESTAMP);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, created_at TIMESTAMP);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^[a-z][a-z0-9_]{0,62}$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        // Every name a column gets: CREATE TABLE, ADD COLUMN, CHANGE (a new name), RENAME COLUMN.
        let names: Vec<&sqlparser::ast::Ident> = match ctx.stmt {
            Statement::CreateTable(t) => t.columns.iter().map(|c| &c.name).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter_map(|o| match o {
                    AlterTableOperation::AddColumn { column_def, .. } => Some(&column_def.name),
                    AlterTableOperation::ChangeColumn { new_name, .. } => Some(new_name),
                    AlterTableOperation::RenameColumn { new_column_name, .. } => Some(new_column_name),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        };
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        names
            .into_iter()
            .filter(|n| !re.is_match(&n.value))
            .map(|n| (ident_at(n), Some(format!("{} does not match {}", n.value, re.as_str()))))
            .collect()
    }
);
