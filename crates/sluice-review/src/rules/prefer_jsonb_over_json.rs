use sqlparser::ast::DataType;

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    PreferJsonbOverJson,
    RuleMeta {
        id: "prefer-jsonb-over-json",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Info,
        summary: "json stores text and re-parses it on every access, and cannot be indexed with GIN",
        advice: "Use jsonb unless key order or duplicate keys must be kept",
        bad: "CREATE TABLE t (id bigint PRIMARY KEY, doc json);",
        good: "CREATE TABLE t (id bigint PRIMARY KEY, doc jsonb);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter().filter(|c| matches!(c.data_type, DataType::JSON)).map(|c| (ident_at(c.name), Some(c.name.value.clone()))).collect()
    }
);
