use sqlparser::ast::{ColumnOption, Statement, TableConstraint};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequirePrimaryKey,
    RuleMeta {
        id: "require-primary-key",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Error,
        summary: "the table has no primary key",
        advice: "Add a primary key: replication, change capture and online schema changes need one to find rows",
        bad: "CREATE TABLE events (name VARCHAR(50), at TIMESTAMP);",
        good: "CREATE TABLE events (id BIGINT PRIMARY KEY, name VARCHAR(50));",
    },
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        if t.query.is_some() || t.like.is_some() {
            return vec![];
        }
        let in_column = t.columns.iter().any(|c| c.options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_))));
        let in_table = t.constraints.iter().any(|c| matches!(c, TableConstraint::PrimaryKey(_)));
        if in_column || in_table { vec![] } else { vec![(None, Some(t.name.to_string()))] }
    }
);
