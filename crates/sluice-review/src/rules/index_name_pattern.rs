use sqlparser::ast::Statement;

use super::{BOTH, last_ident};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn ok(name: &str) -> bool {
    name.starts_with("idx_") && super::snake_case(name)
}

rule!(IndexNamePattern, RuleMeta {
    id: "index-name-pattern",
    category: Category::SchemaDesign,
    engines: BOTH,
    level: Level::Info,
    summary: "the index name does not follow idx_<table>_<columns>",
    advice: "Name indexes idx_<table>_<columns> so plans and errors say what they are",
    bad: "CREATE INDEX account ON orders (account_id);",
    good: "CREATE INDEX idx_orders_account ON orders (account_id);",
}, |ctx| {
    match ctx.stmt {
        Statement::CreateIndex(ci) => match &ci.name {
            Some(n) if !ok(&last_ident(n)) => vec![(None, Some(last_ident(n)))],
            _ => vec![],
        },
        _ => vec![],
    }
});
