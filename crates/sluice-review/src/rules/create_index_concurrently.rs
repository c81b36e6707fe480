use sqlparser::ast::Statement;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    CreateIndexConcurrently,
    RuleMeta {
        id: "create-index-concurrently",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "CREATE INDEX without CONCURRENTLY blocks writes to the table while the index builds",
        advice: "Use CREATE INDEX CONCURRENTLY (outside a transaction block)",
        bad: "CREATE INDEX orders_customer_idx ON orders (customer_id);",
        good: "CREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            // A table created earlier in the file is empty: its index builds at once.
            Statement::CreateIndex(ci) if !ci.concurrently && !ctx.is_new_table(&ci.table_name) => vec![(None, None)],
            _ => vec![],
        }
    }
);
