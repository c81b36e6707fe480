use sqlparser::ast::{BinaryOperator, Expr, Statement, Value};

use super::{BOTH, where_of};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

/// `TRUE`, `1`, `1 = 1`, `'a' = 'a'`, and ORs containing one of them.
fn always_true(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(&v.value, Value::Boolean(true)) || matches!(&v.value, Value::Number(n, _) if n != "0"),
        Expr::Nested(inner) => always_true(inner),
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            matches!((left.as_ref(), right.as_ref()), (Expr::Value(a), Expr::Value(b)) if a.value == b.value)
        }
        Expr::BinaryOp { left, op: BinaryOperator::Or, right } => always_true(left) || always_true(right),
        _ => false,
    }
}

rule!(
    AlwaysTrueWhere,
    RuleMeta {
        id: "always-true-where",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the WHERE clause is always true, so the statement touches every row",
        advice: "Write the condition that selects the intended rows",
        bad: "DELETE FROM orders WHERE 1 = 1;",
        good: "DELETE FROM orders WHERE created_at < '2020-01-01';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::Update(_) | Statement::Delete(_)) {
            return vec![];
        }
        match where_of(ctx.stmt) {
            Some(w) if always_true(w) => vec![(span_of(w), None)],
            _ => vec![],
        }
    }
);
