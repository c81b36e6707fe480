use sqlparser::ast::{Expr, OrderByKind, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

fn is_random(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if { let n = f.name.to_string().to_ascii_lowercase(); n == "rand" || n == "random" })
}

fn query_order(q: &sqlparser::ast::Query) -> &[sqlparser::ast::OrderByExpr] {
    match q.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(list)) => list,
        _ => &[],
    }
}

rule!(
    NoOrderByRand,
    RuleMeta {
        id: "no-order-by-rand",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "ORDER BY RAND()/random() reads and sorts the whole table",
        advice: "Pick random keys in the application, or sample with TABLESAMPLE on PostgreSQL",
        bad: "SELECT id FROM products ORDER BY RAND() LIMIT 5;",
        good: "SELECT id FROM products WHERE id IN (3, 17, 42);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let list: &[sqlparser::ast::OrderByExpr] = match ctx.stmt {
            Statement::Query(q) => query_order(q),
            // INSERT … SELECT … ORDER BY RAND(), and MySQL's DELETE/UPDATE … ORDER BY RAND() LIMIT n.
            Statement::Insert(i) => i.source.as_deref().map(query_order).unwrap_or(&[]),
            Statement::Delete(d) => &d.order_by,
            Statement::Update(u) => &u.order_by,
            _ => &[],
        };
        list.iter().filter(|o| is_random(&o.expr)).map(|o| (span_of(&o.expr), None)).collect()
    }
);
