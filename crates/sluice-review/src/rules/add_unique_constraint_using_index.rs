use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    AddUniqueConstraintUsingIndex,
    RuleMeta {
        id: "add-unique-constraint-using-index",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "adding a UNIQUE or PRIMARY KEY constraint builds its index while blocking writes",
        advice: "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … UNIQUE USING INDEX",
        bad: "ALTER TABLE users ADD CONSTRAINT uk_users_email UNIQUE (email);",
        good: "ALTER TABLE users ADD CONSTRAINT uk_users_email UNIQUE USING INDEX uk_users_email;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_), .. }))
            .map(|_| (None, None))
            .collect()
    }
);
