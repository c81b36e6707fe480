use sqlparser::ast::DataType;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    PreferTextOverVarchar,
    RuleMeta {
        id: "prefer-text-over-varchar",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "varchar(n) on PostgreSQL is text with a length check that a later change must rewrite the table to widen",
        advice: "Use text, with a CHECK constraint if a limit matters",
        bad: "CREATE TABLE t (id bigint PRIMARY KEY, name varchar(100));",
        good: "CREATE TABLE t (id bigint PRIMARY KEY, name text);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.data_type, DataType::Varchar(Some(_)) | DataType::CharacterVarying(Some(_))))
            .map(|c| (crate::rule::ident_at(c.name), Some(c.name.to_string())))
            .collect()
    }
);
