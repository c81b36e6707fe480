use sqlparser::ast::DataType;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

fn small_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int(_)
            | DataType::Integer(_)
            | DataType::SmallInt(_)
            | DataType::TinyInt(_)
            | DataType::MediumInt(_)
            | DataType::Int4(_)
            | DataType::Int2(_)
            | DataType::IntUnsigned(_)
    )
}

rule!(
    PreferBigintPrimaryKey,
    RuleMeta {
        id: "prefer-bigint-primary-key",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "an integer primary key narrower than BIGINT runs out of values (2.1 billion for INT), and widening it later rewrites the table",
        advice: "Use BIGINT for surrogate keys",
        bad: "CREATE TABLE t (id INT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| small_int(c.data_type) && c.is_primary_key())
            .map(|c| (ident_at(c.name), Some(format!("{} {}", c.name, c.data_type))))
            .collect()
    }
);
