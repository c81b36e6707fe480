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
        level: Level::Warning,
        summary: "the table has no COMMENT",
        advice: "Say what the table is for: CREATE TABLE … COMMENT 'customer orders'",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY) COMMENT 'customer orders';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            // The table's own COMMENT sits outside the column list; a column's COMMENT does not count.
            Statement::CreateTable(t)
                if t.comment.is_none() && !crate::code_words::has_word(ctx.code(), "COMMENT", true) =>
            {
                vec![(None, None)]
            }
            _ => vec![],
        }
    }
);
