use sqlparser::ast::Expr;

use super::{BOTH, where_of};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

/// Default limit (policy: `[params.<id>] max = N`).
const MAX: usize = 1000;

fn big_lists<'a>(e: &'a Expr, max: usize, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::InList { list, .. } if list.len() > max => out.push(e),
        Expr::BinaryOp { left, right, .. } => {
            big_lists(left, max, out);
            big_lists(right, max, out);
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => big_lists(inner, max, out),
        _ => {}
    }
}

rule!(
    MaxInList,
    RuleMeta {
        id: "max-in-list",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "an IN list has more than 1,000 values, which is slow to parse and plan",
        advice: "Load the values into a temporary table and join, or split the statement",
        bad: "SELECT id FROM t WHERE id IN (1, 2, 3, 4, 5, 6);",
        good: "SELECT id FROM t WHERE id IN (1, 2, 3);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "1000", example: "5" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", MAX);
        let mut out = Vec::new();
        if let Some(w) = where_of(ctx.stmt) {
            big_lists(w, max, &mut out);
        }
        out.into_iter().map(|e| (span_of(e), None)).collect()
    }
);
