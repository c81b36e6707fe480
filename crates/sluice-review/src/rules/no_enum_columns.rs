use sqlparser::ast::DataType;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NoEnumColumns,
    RuleMeta {
        id: "no-enum-columns",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "ENUM/SET columns need an ALTER TABLE (possibly a table rebuild) for every new value",
        advice: "Use a lookup table with a foreign key, or a VARCHAR with a CHECK constraint",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, status ENUM('new','paid'));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, status VARCHAR(16));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.data_type, DataType::Enum(..) | DataType::Set(_)))
            .map(|c| (ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);
