use std::collections::BTreeSet;

use sqlparser::ast::{Statement, TableFactor};

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::{BOTH, last_ident};

/// Tables a statement changes, lower-cased.
pub(crate) fn target_tables(stmt: &Statement) -> Vec<String> {
    let from_factor = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } => Some(last_ident(name).to_ascii_lowercase()),
        _ => None,
    };
    match stmt {
        Statement::Update(u) => from_factor(&u.table.relation).into_iter().collect(),
        Statement::Delete(d) => match &d.from {
            sqlparser::ast::FromTable::WithFromKeyword(t) | sqlparser::ast::FromTable::WithoutKeyword(t) => {
                t.iter().filter_map(|t| from_factor(&t.relation)).collect()
            }
        },
        Statement::Insert(i) => match &i.table {
            sqlparser::ast::TableObject::TableName(n) => vec![last_ident(n).to_ascii_lowercase()],
            _ => vec![],
        },
        Statement::AlterTable(a) => vec![last_ident(&a.name).to_ascii_lowercase()],
        _ => vec![],
    }
}

file_rule!(
    SchemaTableExists,
    RuleMeta {
        id: "schema-table-exists",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the statement changes a table that the target database does not have (and the file does not create)",
        advice: "Check the table name and the database the change is meant for (schema-aware: needs --schema-from)",
        bad: "UPDATE no_such_table SET a = 1 WHERE id = 1;",
        good: "CREATE TABLE fresh (id BIGINT PRIMARY KEY);\nINSERT INTO fresh (id) VALUES (1);",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, settings| {
        let Some(schema) = &settings.schema else { return vec![] };
        let mut created: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        for s in stmts {
            if let Some(t) = &s.facts.created_table {
                created.insert(t.clone());
                continue;
            }
            for t in s.facts.targets.iter().cloned() {
                if !schema.tables.contains_key(&t) && !created.contains(&t) {
                    out.push((s.index, None, Some(t)));
                }
            }
        }
        out
    }
);
