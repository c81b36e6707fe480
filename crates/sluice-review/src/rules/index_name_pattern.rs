use sqlparser::ast::Statement;

use super::{BOTH, last_ident};
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^idx_[a-z0-9_]+$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta};

rule!(
    IndexNamePattern,
    RuleMeta {
        id: "index-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the index name does not follow idx_<table>_<columns>",
        advice: "Name indexes idx_<table>_<columns> so plans and errors say what they are",
        bad: "CREATE INDEX account ON orders (account_id);",
        good: "CREATE INDEX idx_orders_account ON orders (account_id);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^idx_[a-z0-9_]+$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        match ctx.stmt {
            Statement::CreateIndex(ci) if !ci.unique => match &ci.name {
                Some(n) if !re.is_match(&last_ident(n)) => vec![(None, Some(format!("{} does not match {}", last_ident(n), re.as_str())))],
                _ => vec![],
            },
            _ => vec![],
        }
    }
);
