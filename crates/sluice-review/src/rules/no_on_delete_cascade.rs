use sqlparser::ast::{AlterTableOperation, ReferentialAction, Statement, TableConstraint};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoOnDeleteCascade,
    RuleMeta {
        id: "no-on-delete-cascade",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "ON DELETE CASCADE turns one delete into an unbounded number of deletes in other tables",
        advice: "Delete children explicitly, in batches, or use RESTRICT",
        bad: "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;",
        good: "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let cascades = |c: &TableConstraint| matches!(c, TableConstraint::ForeignKey(fk) if fk.on_delete == Some(ReferentialAction::Cascade));
        match ctx.stmt {
            Statement::CreateTable(t) => t.constraints.iter().filter(|c| cascades(c)).map(|_| (None, None)).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter(|o| matches!(o, AlterTableOperation::AddConstraint { constraint, .. } if cascades(constraint)))
                .map(|_| (None, None))
                .collect(),
            _ => vec![],
        }
    }
);
