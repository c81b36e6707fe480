use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    AddForeignKeyNotValid,
    RuleMeta {
        id: "add-foreign-key-not-valid",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "adding a foreign key validates every row while holding locks on both tables",
        advice: "Add it NOT VALID, then VALIDATE CONSTRAINT in a separate statement (it takes a weaker lock)",
        bad: "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id);",
        good: "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::ForeignKey(_), not_valid: false }))
            .map(|_| (None, None))
            .collect()
    }
);
