use sqlparser::ast::{SelectItem, SetExpr, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoSelectStar,
    RuleMeta {
        id: "no-select-star",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "SELECT * reads every column, including ones added later",
        advice: "List the columns the change needs",
        bad: "SELECT * FROM orders WHERE id = 1;",
        good: "SELECT id, status FROM orders WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::Query(q) = ctx.stmt else { return vec![] };
        match q.body.as_ref() {
            SetExpr::Select(s) if s.projection.iter().any(|p| matches!(p, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))) => vec![(None, None)],
            _ => vec![],
        }
    }
);
