use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoChangePrimaryKey,
    RuleMeta {
        id: "no-change-primary-key",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "changing the primary key rebuilds the table (InnoDB clusters rows by it) and breaks row identity for replication and change capture",
        advice: "Add a new unique key instead, or plan the change as a table copy with an online tool",
        bad: "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (order_no);",
        good: "ALTER TABLE orders ADD CONSTRAINT uk_orders_no UNIQUE (order_no);",
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        let changes = a.operations.iter().any(|o| {
            matches!(o, AlterTableOperation::DropPrimaryKey { .. })
                || matches!(o, AlterTableOperation::AddConstraint { constraint: TableConstraint::PrimaryKey(_), .. })
        });
        if changes { vec![(None, None)] } else { vec![] }
    }
);
