use sqlparser::ast::{Statement, TableConstraint};

use super::POSTGRES;
use super::columns::index_columns;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
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
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let idx = index_columns(t);
        t.constraints
            .iter()
            .filter_map(|c| match c {
                TableConstraint::ForeignKey(fk) => {
                    let cols: Vec<String> = fk.columns.iter().map(|c| c.value.to_ascii_lowercase()).collect();
                    let covered = idx.iter().any(|i| i.len() >= cols.len() && i[..cols.len()] == cols[..]);
                    (!covered).then(|| (None, Some(cols.join(", "))))
                }
                _ => None,
            })
            .collect()
    }
);
