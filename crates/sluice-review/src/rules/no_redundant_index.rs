use sqlparser::ast::Statement;

use super::MYSQL;
use super::columns::index_columns;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoRedundantIndex,
    RuleMeta {
        id: "no-redundant-index",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "an index is a leftmost prefix of another index of the table, which already serves its queries",
        advice: "Drop the shorter index",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b INT, INDEX idx_t_a (a), INDEX idx_t_ab (a, b));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b INT, INDEX idx_t_ab (a, b));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let idx = index_columns(t);
        let mut out = Vec::new();
        for (i, a) in idx.iter().enumerate() {
            let covered = idx.iter().enumerate().any(|(j, b)| j != i && b.len() > a.len() && b[..a.len()] == a[..]);
            if covered {
                out.push((None, Some(a.join(", "))));
            }
        }
        out
    }
);
