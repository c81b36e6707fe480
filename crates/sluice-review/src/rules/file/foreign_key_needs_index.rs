//! A file rule because the index usually comes in its own statement, before or after the key: a foreign key
//! is covered when any index of the table — in the live schema or from any statement of the file — starts
//! with its columns.

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;
use crate::rules::indexes::covers;

file_rule!(
    ForeignKeyNeedsIndex,
    RuleMeta {
        id: "foreign-key-needs-index",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "the foreign key's columns lead no index of the table, so deletes and updates of the referenced rows scan this table",
        advice: "Index the referencing columns (PostgreSQL does not do it for you)",
        bad: "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id));",
        good: "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id), UNIQUE (user_id, id));",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, settings| {
        let indexed = |table: &str, cols: &[String]| {
            stmts.iter().flat_map(|s| &s.facts.indexes).any(|ix| ix.table == table && covers(&ix.columns, cols))
                || settings
                    .schema
                    .as_ref()
                    .and_then(|sc| sc.tables.get(table))
                    .is_some_and(|t| t.indexes.iter().any(|ix| covers(&ix.iter().map(|c| c.to_ascii_lowercase()).collect::<Vec<_>>(), cols)))
        };
        let mut out = Vec::new();
        for s in stmts {
            for (table, cols) in &s.facts.foreign_keys {
                if !indexed(table, cols) {
                    out.push((s.index, None, Some(format!("{table} ({})", cols.join(", ")))));
                }
            }
        }
        out
    }
);
