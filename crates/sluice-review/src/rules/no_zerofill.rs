use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoZerofill,
    RuleMeta {
        id: "no-zerofill",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "ZEROFILL is deprecated (MySQL 8.0.17) and formats data in the schema",
        advice: "Store the number and pad it when displaying (LPAD)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, code INT(6) ZEROFILL);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, code INT);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateTable(_) | Statement::AlterTable(_)
                if crate::code_words::has_word(ctx.code(), "ZEROFILL", false) =>
            {
                vec![(None, None)]
            }
            _ => vec![],
        }
    }
);
