use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoCreateTableAsSelect,
    RuleMeta {
        id: "no-create-table-as-select",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "CREATE TABLE … SELECT is refused with GTID consistency (before 8.0.21), copies no keys, and holds read locks on the source",
        advice: "CREATE TABLE with its keys, then INSERT … SELECT in batches",
        bad: "CREATE TABLE orders_copy AS SELECT id, status FROM orders;",
        good: "CREATE TABLE orders_copy (id BIGINT PRIMARY KEY, status VARCHAR(16));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateTable(t) if t.query.is_some() => vec![(None, None)],
            _ => vec![],
        }
    }
);
