use sqlparser::ast::{ObjectType, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    DropIndexConcurrently,
    RuleMeta {
        id: "drop-index-concurrently",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table",
        advice: "Use DROP INDEX CONCURRENTLY (outside a transaction block)",
        bad: "DROP INDEX orders_customer_idx;",
        good: "DROP INDEX CONCURRENTLY orders_customer_idx;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Drop { object_type: ObjectType::Index, .. } if !crate::code_words::has_word(ctx.code(), "CONCURRENTLY", true) => vec![(None, None)],
            _ => vec![],
        }
    }
);
