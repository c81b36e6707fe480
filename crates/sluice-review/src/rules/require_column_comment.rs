use sqlparser::ast::ColumnOption;

use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    RequireColumnComment,
    RuleMeta {
        id: "require-column-comment",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "the column has no COMMENT",
        advice: "Say what the column holds: COMMENT 'order total in cents'",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY COMMENT 'key', total BIGINT) COMMENT 'orders';",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY COMMENT 'key', total BIGINT COMMENT 'total in cents') COMMENT 'orders';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| !c.has(|o| matches!(o, ColumnOption::Comment(_))))
            .map(|c| (ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);
