use sqlparser::ast::{Expr, Value};

use super::{BOTH, where_of};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

fn leading_wildcards<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Like { pattern, .. } | Expr::ILike { pattern, .. } => {
            // MySQL reads `"%x"` as a string too (without ANSI_QUOTES).
            if let Expr::Value(v) = pattern.as_ref()
                && let Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) = &v.value
                && (s.starts_with('%') || s.starts_with('_'))
            {
                out.push(e);
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            leading_wildcards(left, out);
            leading_wildcards(right, out);
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => leading_wildcards(inner, out),
        _ => {}
    }
}

rule!(
    NoLeadingWildcardLike,
    RuleMeta {
        id: "no-leading-wildcard-like",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "LIKE with a leading wildcard cannot use an index and scans the table",
        advice: "Anchor the pattern at the start, or use a full-text or trigram index",
        bad: "SELECT id FROM users WHERE email LIKE '%@example.com';",
        good: "SELECT id FROM users WHERE email LIKE 'alice%';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let mut found = Vec::new();
        if let Some(w) = where_of(ctx.stmt) {
            leading_wildcards(w, &mut found);
        }
        found.into_iter().map(|e| (span_of(e), None)).collect()
    }
);
