use sqlparser::ast::{Statement, TableConstraint};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Each index of a CREATE TABLE as its column list (lowercased).
pub(crate) fn index_columns(t: &sqlparser::ast::CreateTable) -> Vec<Vec<String>> {
    let cols = |c: &[sqlparser::ast::IndexColumn]| c.iter().map(|ic| ic.column.expr.to_string().to_ascii_lowercase()).collect::<Vec<_>>();
    let mut out: Vec<Vec<String>> = t
        .constraints
        .iter()
        .filter_map(|c| match c {
            TableConstraint::Index(i) => Some(cols(&i.columns)),
            TableConstraint::Unique(u) => Some(cols(&u.columns)),
            TableConstraint::PrimaryKey(p) => Some(cols(&p.columns)),
            _ => None,
        })
        .collect();
    out.retain(|c| !c.is_empty());
    out
}

rule!(
    NoDuplicateIndex,
    RuleMeta {
        id: "no-duplicate-index",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "two indexes of the table have the same columns in the same order",
        advice: "Keep one of them",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, UNIQUE (a), UNIQUE (a));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, UNIQUE (a));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let idx = index_columns(t);
        let mut out = Vec::new();
        for (i, a) in idx.iter().enumerate() {
            if idx[..i].contains(a) {
                out.push((None, Some(a.join(", "))));
            }
        }
        out
    }
);
