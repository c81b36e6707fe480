use sqlparser::ast::Statement;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoSetGlobal,
    RuleMeta {
        id: "no-set-global",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Error,
        summary: "SET GLOBAL changes the server for every session, outside configuration management",
        advice: "Change server settings through the configuration (and a restart or SET PERSIST in a change of its own)",
        bad: "SET GLOBAL max_connections = 5000;",
        good: "SET SESSION sql_mode = 'STRICT_ALL_TABLES';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Set(_)
                if ctx.code().get(1).is_some_and(|c| matches!(c.word.as_deref(), Some("GLOBAL" | "PERSIST" | "PERSIST_ONLY")) || c.value.to_ascii_uppercase().starts_with("@@GLOBAL")) =>
            {
                vec![(None, None)]
            }
            _ => vec![],
        }
    }
);
