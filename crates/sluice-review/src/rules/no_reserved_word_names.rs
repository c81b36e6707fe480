use sqlparser::ast::Statement;

use super::{BOTH, last_ident};
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

/// Words reserved in MySQL 8 or PostgreSQL 15 that people often try as names.
const RESERVED: &[&str] = &[
    "add",
    "all",
    "alter",
    "and",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "check",
    "column",
    "constraint",
    "create",
    "cross",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "exists",
    "false",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "index",
    "inner",
    "insert",
    "interval",
    "into",
    "is",
    "join",
    "key",
    "keys",
    "left",
    "like",
    "limit",
    "match",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "primary",
    "range",
    "references",
    "rank",
    "right",
    "row",
    "rows",
    "select",
    "set",
    "table",
    "then",
    "to",
    "true",
    "union",
    "unique",
    "update",
    "usage",
    "user",
    "using",
    "values",
    "when",
    "where",
    "with",
    "window",
];

fn reserved(s: &str) -> bool {
    RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

rule!(
    NoReservedWordNames,
    RuleMeta {
        id: "no-reserved-word-names",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a table or column is named with a reserved word and must be quoted everywhere",
        advice: "Choose another name (order → order_no, rank → position)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, rank INT);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, order_no INT);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let mut out = Vec::new();
        if reserved(&last_ident(&t.name)) {
            out.push((None, Some(last_ident(&t.name))));
        }
        out.extend(t.columns.iter().filter(|c| reserved(&c.name.value)).map(|c| (ident_at(&c.name), Some(c.name.value.clone()))));
        out
    }
);
