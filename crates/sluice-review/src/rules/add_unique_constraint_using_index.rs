use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

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
        if ctx.is_new_table(&a.name) {
            return vec![];
        }
        let mut out: Vec<_> = a
            .operations
            .iter()
            .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_), .. }))
            .map(|_| (None, None))
            .collect();
        // `ADD COLUMN c text UNIQUE` / `… SERIAL PRIMARY KEY`: the index is built as the column is added.
        for c in super::columns::columns(ctx.stmt) {
            if c.how == super::columns::How::Add && c.has(|o| matches!(o, ColumnOption::Unique(_) | ColumnOption::PrimaryKey(_))) {
                out.push((ident_at(c.name), Some(c.name.value.clone())));
            }
        }
        out
    }
);
