use sqlparser::ast::DataType;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    AutoIncrementUnsignedBigint,
    RuleMeta {
        id: "auto-increment-unsigned-bigint",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "an AUTO_INCREMENT column that is not BIGINT UNSIGNED can run out of values",
        advice: "Declare it BIGINT UNSIGNED",
        bad: "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| c.has(|o| o.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")))
            .filter(|c| !matches!(c.data_type, DataType::BigIntUnsigned(_)))
            .map(|c| (crate::rule::ident_at(c.name), Some(format!("{} is {}", c.name, c.data_type))))
            .collect()
    }
);
