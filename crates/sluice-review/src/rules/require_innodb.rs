use sqlparser::ast::Statement;

use super::MYSQL;
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
        let code = crate::code_words::code(ctx.text, ctx.dialect);
        crate::code_words::option_values(&code, &["ENGINE"], true).into_iter().filter(|e| e != "innodb").map(|e| (None, Some(e))).collect()
    }
);
