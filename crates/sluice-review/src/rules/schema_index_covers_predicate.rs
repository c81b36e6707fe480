use std::collections::BTreeSet;

use sqlparser::ast::{BinaryOperator, Expr, Statement};

use super::file::schema_table_exists::target_tables;
use super::{BOTH, where_of};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Columns compared in a condition, lower-cased (through AND; an OR makes every branch count).
fn predicate_columns(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Identifier(i) => {
            out.insert(i.value.to_ascii_lowercase());
        }
        Expr::CompoundIdentifier(parts) => {
            if let Some(p) = parts.last() {
                out.insert(p.value.to_ascii_lowercase());
            }
        }
        Expr::BinaryOp {
            left,
            op:
                BinaryOperator::And
                | BinaryOperator::Or
                | BinaryOperator::Eq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::NotEq,
            right,
        } => {
            predicate_columns(left, out);
            predicate_columns(right, out);
        }
        Expr::InList { expr, .. } | Expr::Between { expr, .. } | Expr::IsNull(expr) | Expr::IsNotNull(expr) | Expr::Like { expr, .. } => {
            predicate_columns(expr, out)
        }
        Expr::Nested(inner) => predicate_columns(inner, out),
        _ => {}
    }
}

rule!(
    SchemaIndexCoversPredicate,
    RuleMeta {
        id: "schema-index-covers-predicate",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "no index of the table starts with a column of this UPDATE/DELETE condition, so it scans (and on MySQL locks) every row",
        advice: "Filter on an indexed column, or add an index first (schema-aware: needs --schema-from)",
        bad: "UPDATE orders SET status = 'paid' WHERE note = 'x';",
        good: "UPDATE orders SET status = 'paid' WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Some(schema) = &ctx.settings.schema else { return vec![] };
        if !matches!(ctx.stmt, Statement::Update(_) | Statement::Delete(_)) {
            return vec![];
        }
        let Some(table) = target_tables(ctx.stmt).into_iter().next() else { return vec![] };
        let Some(info) = schema.tables.get(&table) else { return vec![] };
        let Some(w) = where_of(ctx.stmt) else { return vec![] };
        let mut cols = BTreeSet::new();
        predicate_columns(w, &mut cols);
        let covered = info.indexes.iter().any(|idx| idx.first().is_some_and(|c| cols.contains(c)));
        if covered || cols.is_empty() { vec![] } else { vec![(None, Some(format!("{table}: {}", cols.into_iter().collect::<Vec<_>>().join(", "))))] }
    }
);
