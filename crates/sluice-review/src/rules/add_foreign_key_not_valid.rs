use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement, TableConstraint};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

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
        if ctx.is_new_table(&a.name) {
            return vec![];
        }
        let mut out: Vec<_> = a
            .operations
            .iter()
            .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::ForeignKey(_), not_valid: false }))
            .map(|_| (None, None))
            .collect();
        // `ADD COLUMN c int REFERENCES t (id)`: the constraint is validated as it is added.
        for c in super::columns::columns(ctx.stmt) {
            if c.how == super::columns::How::Add && c.has(|o| matches!(o, ColumnOption::ForeignKey(_))) {
                out.push((ident_at(c.name), Some(format!("{} REFERENCES …", c.name))));
            }
        }
        out
    }
);
