use sqlparser::ast::DataType;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    PreferTextOverChar,
    RuleMeta {
        id: "prefer-text-over-char",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "char(n) pads with spaces and is never faster than text on PostgreSQL",
        advice: "Use text (with a CHECK on length if needed)",
        bad: "CREATE TABLE t (id bigint PRIMARY KEY, code char(3));",
        good: "CREATE TABLE t (id bigint PRIMARY KEY, code text);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.data_type, DataType::Char(_) | DataType::Character(_)))
            .map(|c| (ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);
