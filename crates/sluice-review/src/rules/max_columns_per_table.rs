use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Default limit.
/// Default limit (policy: `[params.<id>] max = N`).
const MAX: usize = 50;

rule!(
    MaxColumnsPerTable,
    RuleMeta {
        id: "max-columns-per-table",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the table has more than 50 columns",
        advice: "Split rarely used columns into a side table",
        bad: "CREATE TABLE t (c1 INT PRIMARY KEY, c2 INT, c3 INT, c4 INT, c5 INT, c6 INT, c7 INT, c8 INT, c9 INT, c10 INT, c11 INT, c12 INT, c13 INT, c14 INT, c15 INT, c16 INT, c17 INT, c18 INT, c19 INT, c20 INT, c21 INT, c22 INT, c23 INT, c24 INT, c25 INT, c26 INT, c27 INT, c28 INT, c29 INT, c30 INT, c31 INT, c32 INT, c33 INT, c34 INT, c35 INT, c36 INT, c37 INT, c38 INT, c39 INT, c40 INT, c41 INT, c42 INT, c43 INT, c44 INT, c45 INT, c46 INT, c47 INT, c48 INT, c49 INT, c50 INT, c51 INT);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "50", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", MAX);
        match ctx.stmt {
            Statement::CreateTable(t) if t.columns.len() > max => vec![(None, Some(format!("{} columns", t.columns.len())))],
            _ => vec![],
        }
    }
);
