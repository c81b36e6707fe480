use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoForeignKeys,
    RuleMeta {
        id: "no-foreign-keys",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "foreign keys make online schema changes and sharding harder on MySQL (online tools must rebuild them)",
        advice: "Keep referential checks in the application where your policy says so; turn this rule off otherwise",
        bad: "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id));",
        good: "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let is_fk = |c: &TableConstraint| matches!(c, TableConstraint::ForeignKey(_));
        match ctx.stmt {
            Statement::CreateTable(t) => t.constraints.iter().filter(|c| is_fk(c)).map(|_| (None, None)).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint, .. } if is_fk(constraint)))
                .map(|_| (None, None))
                .collect(),
            _ => vec![],
        }
    }
);
