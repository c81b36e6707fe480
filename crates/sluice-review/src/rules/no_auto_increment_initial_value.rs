use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoAutoIncrementInitialValue,
    RuleMeta {
        id: "no-auto-increment-initial-value",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Info,
        summary: "the table starts AUTO_INCREMENT at a value other than 1, which usually copies state from another environment",
        advice: "Leave AUTO_INCREMENT out of the definition",
        bad: "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT=1000;",
        good: "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::CreateTable(_) | Statement::AlterTable(_)) {
            return vec![];
        }
        // Table option `AUTO_INCREMENT=N` (the column attribute has no `=` and no number after it).
        let code = ctx.code();
        crate::code_words::option_values(code, &["AUTO_INCREMENT"], true)
            .into_iter()
            .filter(|v| v.parse::<u64>().is_ok_and(|n| n != 1))
            .map(|v| (None, Some(v)))
            .collect()
    }
);
