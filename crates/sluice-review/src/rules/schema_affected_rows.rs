use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

const MAX: usize = 10_000;

rule!(
    SchemaAffectedRows,
    RuleMeta {
        id: "schema-affected-rows",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "EXPLAIN estimates that this UPDATE/DELETE touches more than 10,000 rows",
        advice: "Split it into batches by key range (schema-aware: needs --schema-from; limit: [params.schema-affected-rows] max)",
        bad: "DELETE FROM orders WHERE status = 'old';",
        good: "SELECT 1;\nDELETE FROM orders WHERE id = 1;",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "10000", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        if !matches!(ctx.stmt, Statement::Update(_) | Statement::Delete(_)) {
            return vec![];
        }
        let max = ctx.settings.int(META.id, "max", MAX) as u64;
        match schema.estimates.get(&ctx.index) {
            Some(rows) if *rows > max => vec![(None, Some(format!("about {rows} rows")))],
            _ => vec![],
        }
    }
);
