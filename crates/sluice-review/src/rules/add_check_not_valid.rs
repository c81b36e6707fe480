use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    AddCheckNotValid,
    RuleMeta {
        id: "add-check-not-valid",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "adding a CHECK constraint scans the whole table under an ACCESS EXCLUSIVE lock",
        advice: "Add it NOT VALID, then VALIDATE CONSTRAINT in a separate statement",
        bad: "ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0);",
        good: "ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::Check(_), not_valid: false }))
            .map(|_| (None, None))
            .collect()
    }
);
