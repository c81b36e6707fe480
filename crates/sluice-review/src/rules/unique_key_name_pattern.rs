use sqlparser::ast::{Statement, TableConstraint};

use super::{BOTH, last_ident};
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^(uk|uq)_[a-z0-9_]+$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta};

rule!(
    UniqueKeyNamePattern,
    RuleMeta {
        id: "unique-key-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the unique key's name does not start with uk_",
        advice: "Name unique keys uk_<table>_<columns>",
        bad: "CREATE UNIQUE INDEX email ON users (email);",
        good: "CREATE UNIQUE INDEX uk_users_email ON users (email);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^(uk|uq)_[a-z0-9_]+$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        let bad = |n: &str| !re.is_match(n);
        let unique_name = |c: &TableConstraint| match c {
            TableConstraint::Unique(u) => u.name.as_ref().or(u.index_name.as_ref()).filter(|n| bad(&n.value)).map(|n| (None, Some(n.value.clone()))),
            _ => None,
        };
        match ctx.stmt {
            Statement::CreateIndex(ci) if ci.unique => match &ci.name {
                Some(n) if bad(&last_ident(n)) => vec![(None, Some(last_ident(n)))],
                _ => vec![],
            },
            Statement::CreateTable(t) => t.constraints.iter().filter_map(unique_name).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter_map(|o| match o {
                    sqlparser::ast::AlterTableOperation::AddConstraint { constraint, .. } => unique_name(constraint),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }
);
