use sqlparser::ast::Statement;

use super::{BOTH, last_ident};
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z][a-z0-9_]{0,62}$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta};

rule!(
    TableNamePattern,
    RuleMeta {
        id: "table-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the table name does not match the naming pattern (default: lower snake_case)",
        advice: "Name tables in lower snake_case; mixed case needs quoting forever",
        bad: "CREATE TABLE OrderItems (id BIGINT PRIMARY KEY);",
        good: "CREATE TABLE order_items (id BIGINT PRIMARY KEY);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^[a-z][a-z0-9_]{0,62}$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        // The names a statement gives tables: CREATE TABLE, RENAME TABLE a TO b, ALTER TABLE … RENAME TO b.
        let mut names: Vec<&sqlparser::ast::ObjectName> = Vec::new();
        match ctx.stmt {
            Statement::CreateTable(t) => names.push(&t.name),
            Statement::RenameTable(list) => names.extend(list.iter().map(|r| &r.new_name)),
            Statement::AlterTable(a) => names.extend(a.operations.iter().filter_map(|o| match o {
                sqlparser::ast::AlterTableOperation::RenameTable { table_name: sqlparser::ast::RenameTableNameKind::To(n) | sqlparser::ast::RenameTableNameKind::As(n) } => Some(n),
                _ => None,
            })),
            _ => {}
        }
        names
            .into_iter()
            .map(last_ident)
            .filter(|n| !re.is_match(n))
            .map(|n| (None, Some(format!("{n} does not match {}", re.as_str()))))
            .collect()
    }
);
