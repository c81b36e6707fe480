use sqlparser::ast::{AlterTableOperation, Statement};

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    AlterRequiresOnlineAlgorithm,
    RuleMeta {
        id: "alter-requires-online-algorithm",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "this ALTER may copy the table and block writes; without ALGORITHM and LOCK the server silently picks the blocking way",
        advice: "Add ALGORITHM=INSTANT (or INPLACE), LOCK=NONE: the server then refuses instead of locking, and you can plan an online tool",
        bad: "ALTER TABLE orders MODIFY COLUMN note VARCHAR(500);",
        good: "ALTER TABLE orders MODIFY COLUMN note VARCHAR(500), ALGORITHM=INPLACE, LOCK=NONE;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        let heavy = a.operations.iter().any(|o| {
            matches!(
                o,
                AlterTableOperation::ModifyColumn { .. }
                    | AlterTableOperation::ChangeColumn { .. }
                    | AlterTableOperation::DropColumn { .. }
                    | AlterTableOperation::DropPrimaryKey { .. }
                    | AlterTableOperation::AddConstraint { .. }
            )
        });
        let code = ctx.code();
        let online =
            !crate::code_words::option_values(code, &["ALGORITHM"], true).is_empty() && !crate::code_words::option_values(code, &["LOCK"], true).is_empty();
        if heavy && !online { vec![(None, None)] } else { vec![] }
    }
);
