use sqlparser::ast::{Expr, Statement};

use super::{MYSQL, where_of};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

fn subqueries<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::Subquery(_) => out.push(e),
        Expr::BinaryOp { left, right, .. } => {
            subqueries(left, out);
            subqueries(right, out);
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => subqueries(inner, out),
        _ => {}
    }
}

rule!(
    NoSubqueryInDml,
    RuleMeta {
        id: "no-subquery-in-dml",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a subquery in an UPDATE/DELETE condition may run per row and locks every row it reads",
        advice: "Select the keys first, then change by key (or use a join with care)",
        bad: "DELETE FROM orders WHERE user_id IN (SELECT id FROM users WHERE banned = 1);",
        good: "DELETE FROM orders WHERE user_id IN (3, 5, 8);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::Update(_) | Statement::Delete(_)) {
            return vec![];
        }
        let mut out = Vec::new();
        if let Some(w) = where_of(ctx.stmt) {
            subqueries(w, &mut out);
        }
        out.into_iter().map(|e| (span_of(e), None)).collect()
    }
);
