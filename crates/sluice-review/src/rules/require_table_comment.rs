use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireTableComment,
    RuleMeta {
        id: "require-table-comment",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Info,
        summary: "the table has no COMMENT",
        advice: "Say what the table is for: CREATE TABLE … COMMENT 'customer orders'",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY) COMMENT 'customer orders';",
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateTable(t) if t.comment.is_none() && !ctx.text.to_ascii_uppercase().contains("COMMENT") => vec![(None, None)],
            _ => vec![],
        }
    }
);
