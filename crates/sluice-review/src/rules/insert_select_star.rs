use sqlparser::ast::{SelectItem, SetExpr, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    InsertSelectStar,
    RuleMeta {
        id: "insert-select-star",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "INSERT … SELECT * depends on both tables keeping the same columns in the same order",
        advice: "List the selected columns",
        bad: "INSERT INTO orders_archive (id, status) SELECT * FROM orders;",
        good: "INSERT INTO orders_archive (id, status) SELECT id, status FROM orders;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::Insert(i) = ctx.stmt else { return vec![] };
        let Some(src) = &i.source else { return vec![] };
        match src.body.as_ref() {
            SetExpr::Select(s) if s.projection.iter().any(|p| matches!(p, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))) => vec![(None, None)],
            _ => vec![],
        }
    }
);
