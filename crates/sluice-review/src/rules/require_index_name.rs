use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireIndexName,
    RuleMeta {
        id: "require-index-name",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the index has no name, so the server makes one up and later changes cannot name it reliably",
        advice: "Name it: CREATE INDEX idx_<table>_<columns> ON …",
        bad: "CREATE INDEX ON orders (user_id);",
        good: "CREATE INDEX idx_orders_user ON orders (user_id);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateIndex(ci) if ci.name.is_none() => vec![(None, None)],
            _ => vec![],
        }
    }
);
