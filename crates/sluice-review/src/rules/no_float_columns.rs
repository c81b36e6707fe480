use sqlparser::ast::DataType;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NoFloatColumns,
    RuleMeta {
        id: "no-float-columns",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "FLOAT stores about 7 significant digits and compares unexpectedly (0.1 + 0.2 != 0.3)",
        advice: "Use DOUBLE for measurements or DECIMAL for exact values",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, ratio FLOAT);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, ratio DOUBLE);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.data_type, DataType::Float(_) | DataType::Real | DataType::Float4))
            .map(|c| (ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);
