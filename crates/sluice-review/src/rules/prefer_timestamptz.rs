use sqlparser::ast::{DataType, TimezoneInfo};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn without_zone(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone))
}

rule!(
    PreferTimestamptz,
    RuleMeta {
        id: "prefer-timestamptz",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "timestamp without time zone stores wall-clock times whose zone is lost",
        advice: "Use timestamptz (timestamp with time zone)",
        bad: "CREATE TABLE t (id bigint PRIMARY KEY, created_at timestamp);",
        good: "CREATE TABLE t (id bigint PRIMARY KEY, created_at timestamptz);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| without_zone(c.data_type))
            .map(|c| (crate::rule::ident_at(c.name), Some(c.name.to_string())))
            .collect()
    }
);
