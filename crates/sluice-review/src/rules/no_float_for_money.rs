use sqlparser::ast::DataType;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

const MONEY_WORDS: &[&str] = &["price", "amount", "cost", "total", "balance", "money", "fee", "salary", "tax"];

fn is_float(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float(_)
            | DataType::Float4
            | DataType::Float8
            | DataType::Real
            | DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::RealUnsigned
            | DataType::DoubleUnsigned(_)
            | DataType::DoublePrecisionUnsigned
    )
}

rule!(
    NoFloatForMoney,
    RuleMeta {
        id: "no-float-for-money",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a money-like column is a binary floating-point type, which cannot store cents exactly",
        advice: "Use DECIMAL/NUMERIC with a fixed scale, or integer cents",
        bad: "CREATE TABLE orders (id BIGINT PRIMARY KEY, total_amount DOUBLE PRECISION);",
        good: "CREATE TABLE orders (id BIGINT PRIMARY KEY, total_amount DECIMAL(12,2));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| is_float(c.data_type) && MONEY_WORDS.iter().any(|w| c.name.value.to_ascii_lowercase().contains(w)))
            .map(|c| (crate::rule::ident_at(c.name), Some(c.name.to_string())))
            .collect()
    }
);
