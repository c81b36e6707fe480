use sqlparser::ast::Statement;

use super::MYSQL;
use super::charset_allow_list::options_after;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireInnodb,
    RuleMeta {
        id: "require-innodb",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Error,
        summary: "the table uses a storage engine other than InnoDB (no transactions, crash safety or row locks)",
        advice: "Use ENGINE=InnoDB",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=MyISAM;",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=InnoDB;",
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::CreateTable(_) | Statement::AlterTable(_)) {
            return vec![];
        }
        options_after(ctx.text, &["ENGINE"]).into_iter().filter(|e| e != "innodb").map(|e| (None, Some(e))).collect()
    }
);
