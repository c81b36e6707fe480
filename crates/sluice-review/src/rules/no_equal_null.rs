use sqlparser::ast::{BinaryOperator, Expr, Value};

use crate::rule::span_of;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if v.value == Value::Null)
}

fn null_comparisons<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp { left, op, right } => {
            if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) && (is_null(left) || is_null(right)) {
                out.push(e);
            }
            null_comparisons(left, out);
            null_comparisons(right, out);
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => null_comparisons(inner, out),
        _ => {}
    }
}

rule!(
    NoEqualNull,
    RuleMeta {
        id: "no-equal-null",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "`= NULL` or `<> NULL` is never true (NULL compares as unknown), so the condition matches no row",
        advice: "Use IS NULL / IS NOT NULL",
        bad: "SELECT id FROM orders WHERE note = NULL;",
        good: "SELECT id FROM orders WHERE note IS NULL;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let mut found = Vec::new();
        if let Some(w) = crate::rules::where_of(ctx.stmt) {
            null_comparisons(w, &mut found);
        }
        found.into_iter().map(|e| (span_of(e), None)).collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-equal-null").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-equal-null").count()
    }

    #[test]
    fn update_delete_and_strings() {
        assert_eq!(fired("DELETE FROM t WHERE a = 1 AND b <> NULL;", SqlDialect::MySql), 1);
        assert_eq!(fired("UPDATE t SET a = NULL WHERE b = 'NULL' AND c IS NULL; -- = NULL", SqlDialect::Postgres), 0, "an assignment, a string, IS NULL, a comment");
    }
}
