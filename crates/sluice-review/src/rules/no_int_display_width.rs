use sqlparser::ast::DataType;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

fn has_width(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int(Some(_))
            | DataType::Integer(Some(_))
            | DataType::BigInt(Some(_))
            | DataType::SmallInt(Some(_))
            | DataType::TinyInt(Some(_))
            | DataType::MediumInt(Some(_))
            | DataType::IntUnsigned(Some(_))
            | DataType::BigIntUnsigned(Some(_))
    )
}

rule!(
    NoIntDisplayWidth,
    RuleMeta {
        id: "no-int-display-width",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Info,
        summary: "an integer display width such as INT(11) is deprecated and does not limit the value",
        advice: "Write INT or BIGINT without a width",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, n INT(11));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, n INT);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter().filter(|c| has_width(c.data_type)).map(|c| (ident_at(c.name), Some(format!("{} {}", c.name, c.data_type)))).collect()
    }
);
