use sqlparser::ast::{Expr, OrderByKind, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, span_of};

fn is_random(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if { let n = f.name.to_string().to_ascii_lowercase(); n == "rand" || n == "random" })
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
        let Statement::Query(q) = ctx.stmt else { return vec![] };
        let Some(ob) = &q.order_by else { return vec![] };
        match &ob.kind {
            OrderByKind::Expressions(list) => list.iter().filter(|o| is_random(&o.expr)).map(|o| (span_of(&o.expr), None)).collect(),
            _ => vec![],
        }
    }
);
