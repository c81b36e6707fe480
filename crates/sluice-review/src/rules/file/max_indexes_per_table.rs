//! A file rule because migrations add indexes one statement at a time: the count is the table's, across the
//! CREATE TABLE, later CREATE INDEX and ALTER TABLE … ADD INDEX statements of the file.

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::MYSQL;
use crate::rules::indexes::IndexKind;

/// Default limit of secondary indexes (policy: `[params.<id>] max = N`).
const MAX: usize = 5;

file_rule!(
    MaxIndexesPerTable,
    RuleMeta {
        id: "max-indexes-per-table",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "the table has more than 5 secondary indexes, which every write must maintain",
        advice: "Drop indexes no query needs; combine overlapping ones",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b INT, c INT, d INT, e INT, f INT, INDEX idx_a (a), INDEX idx_b (b), INDEX idx_c (c), INDEX idx_d (d), INDEX idx_e (e), INDEX idx_f (f));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, INDEX idx_a (a));",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "5", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, settings| {
        let max = settings.int(META.id, "max", MAX);
        let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for s in stmts {
            // A table created again starts over.
            if let Some(t) = &s.facts.created_table {
                count.remove(t.as_str());
            }
            let mut crossed = Vec::new();
            for ix in s.facts.indexes.iter().filter(|i| i.kind != IndexKind::Primary) {
                let n = count.entry(ix.table.as_str()).or_default();
                *n += 1;
                if *n == max + 1 {
                    crossed.push(ix.table.clone());
                }
            }
            // Reported once per table, where the limit is crossed.
            for t in crossed {
                out.push((s.index, None, Some(format!("{t}: {} secondary indexes", count[t.as_str()]))));
            }
        }
        out
    }
);
