use sqlparser::ast::DataType;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NoMoneyType,
    RuleMeta {
        id: "no-money-type",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "the money type depends on lc_monetary and has fixed precision and one currency",
        advice: "Use numeric with a scale, plus a currency column if needed",
        bad: "CREATE TABLE t (id bigint PRIMARY KEY, price money);",
        good: "CREATE TABLE t (id bigint PRIMARY KEY, price numeric(12,2));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.data_type, DataType::Custom(n, _) if n.to_string().eq_ignore_ascii_case("money")))
            .map(|c| (ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);
