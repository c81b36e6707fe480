//! A file rule because the longer index is often added by a later statement: an index is redundant when any
//! index the table has (in the live schema, or from any statement of the file) starts with its columns.

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::MYSQL;
use crate::rules::indexes::{IndexKind, covers};

file_rule!(
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
    |stmts, _dialect, settings| {
        let mut all: std::collections::HashMap<&str, Vec<&[String]>> = std::collections::HashMap::new();
        for s in stmts {
            for ix in &s.facts.indexes {
                all.entry(ix.table.as_str()).or_default().push(&ix.columns);
            }
        }
        let live = |table: &str| settings.schema.as_ref().and_then(|sc| sc.tables.get(table)).map(|t| t.indexes.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for s in stmts {
            // Only plain indexes: a unique one enforces a constraint, and the key is needed whatever covers it.
            for ix in s.facts.indexes.iter().filter(|i| i.kind == IndexKind::Plain) {
                let longer_in_file = all[ix.table.as_str()].iter().any(|other| other.len() > ix.columns.len() && covers(other, &ix.columns));
                let longer_live = live(&ix.table).iter().any(|other| {
                    let other: Vec<String> = other.iter().map(|c| c.to_ascii_lowercase()).collect();
                    other.len() > ix.columns.len() && covers(&other, &ix.columns)
                });
                if longer_in_file || longer_live {
                    out.push((s.index, None, Some(format!("{} ({})", ix.table, ix.columns.join(", ")))));
                }
            }
        }
        out
    }
);
