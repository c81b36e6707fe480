use sqlparser::ast::Statement;

use super::{BOTH, last_ident, snake_case};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(TableNamePattern, RuleMeta {
    id: "table-name-pattern",
    category: Category::SchemaDesign,
    engines: BOTH,
    level: Level::Warning,
    summary: "the table name is not lower snake_case (^[a-z][a-z0-9_]{0,62}$)",
    advice: "Name tables in lower snake_case; mixed case needs quoting forever",
    bad: "CREATE TABLE OrderItems (id BIGINT PRIMARY KEY);",
    good: "CREATE TABLE order_items (id BIGINT PRIMARY KEY);",
}, |ctx| {
    match ctx.stmt {
        Statement::CreateTable(t) if !snake_case(&last_ident(&t.name)) => vec![(None, Some(last_ident(&t.name)))],
        _ => vec![],
    }
});
