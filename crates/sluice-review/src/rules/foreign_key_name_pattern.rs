use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};

use super::BOTH;
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^fk_[a-z0-9_]+$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta};

rule!(
    ForeignKeyNamePattern,
    RuleMeta {
        id: "foreign-key-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the foreign key is unnamed or its name does not start with fk_",
        advice: "Name foreign keys fk_<table>_<referenced table>, so errors and drops can name them",
        bad: "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);",
        good: "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^fk_[a-z0-9_]+$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        let check = |c: &TableConstraint| match c {
            TableConstraint::ForeignKey(fk) => match &fk.name {
                Some(n) if re.is_match(&n.value) => None,
                Some(n) => Some((None, Some(n.value.clone()))),
                None => Some((None, Some("unnamed".into()))),
            },
            _ => None,
        };
        match ctx.stmt {
            Statement::CreateTable(t) => t.constraints.iter().filter_map(check).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter_map(|o| match o {
                    AlterTableOperation::AddConstraint { constraint, .. } => check(constraint),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }
);
