use sqlparser::ast::{Statement, TableConstraint};

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Default limit of secondary indexes.
/// Default limit (policy: `[params.<id>] max = N`).
const MAX: usize = 5;

rule!(
    MaxIndexesPerTable,
    RuleMeta {
        id: "max-indexes-per-table",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "the table defines more than 5 secondary indexes, which every write must maintain",
        advice: "Drop indexes no query needs; combine overlapping ones",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b INT, c INT, d INT, e INT, f INT, INDEX idx_a (a), INDEX idx_b (b), INDEX idx_c (c), INDEX idx_d (d), INDEX idx_e (e), INDEX idx_f (f));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, INDEX idx_a (a));",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "5", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", MAX);
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let n = t.constraints.iter().filter(|c| matches!(c, TableConstraint::Index(_) | TableConstraint::Unique(_))).count();
        if n > max { vec![(None, Some(format!("{n} indexes")))] } else { vec![] }
    }
);
