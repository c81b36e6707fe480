use sqlparser::ast::Statement;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoVacuumFull,
    RuleMeta {
        id: "no-vacuum-full",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
        advice: "Use plain VACUUM, or pg_repack for an online rewrite",
        bad: "VACUUM FULL orders;",
        good: "VACUUM orders;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Vacuum(_) if crate::code_words::has_word(ctx.code(), "FULL", false) => vec![(None, None)],
            _ => vec![],
        }
    }
);
