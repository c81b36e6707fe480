use sqlparser::ast::{AlterTableOperation, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoRenameTable,
    RuleMeta {
        id: "no-rename-table",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "renaming a table breaks every running application version that uses the old name",
        advice: "Create a view under the old name during the transition, or migrate readers first",
        bad: "ALTER TABLE orders RENAME TO purchases;",
        good: "CREATE VIEW purchases AS SELECT * FROM orders;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::AlterTable(a) if a.operations.iter().any(|o| matches!(o, AlterTableOperation::RenameTable { .. })) => vec![(None, None)],
            Statement::RenameTable(_) => vec![(None, None)],
            _ => vec![],
        }
    }
);
