use sqlparser::ast::DataType;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    PreferIdentityOverSerial,
    RuleMeta {
        id: "prefer-identity-over-serial",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "serial columns own a separate sequence with surprising permissions and dump behaviour",
        advice: "Use BIGINT GENERATED ALWAYS AS IDENTITY",
        bad: "CREATE TABLE t (id serial PRIMARY KEY);",
        good: "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
        .filter(|c| matches!(c.data_type, DataType::Custom(n, _) if matches!(n.to_string().to_ascii_lowercase().as_str(), "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2")))
        .map(|c| (crate::rule::ident_at(c.name), Some(c.name.to_string())))
        .collect()
    }
);
