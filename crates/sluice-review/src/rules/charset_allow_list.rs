use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Charsets allowed by default (policy: `[params.charset-allow-list] allowed = [...]`).
const ALLOWED: &[&str] = &["utf8mb4", "binary", "ascii"];

rule!(
    CharsetAllowList,
    RuleMeta {
        id: "charset-allow-list",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a character set other than utf8mb4 is used (utf8/utf8mb3 cannot store all of Unicode)",
        advice: "Use utf8mb4",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20)) DEFAULT CHARSET=latin1;",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20)) DEFAULT CHARSET=utf8mb4;",
        params: &[crate::rule::Param { name: "allowed", kind: crate::rule::ParamKind::Names, default: "[\"utf8mb4\", \"binary\", \"ascii\"]", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(
            ctx.stmt,
            sqlparser::ast::Statement::CreateTable(_) | sqlparser::ast::Statement::AlterTable(_) | sqlparser::ast::Statement::CreateDatabase { .. }
        ) {
            return vec![];
        }
        let allowed = ctx.settings.list(META.id, "allowed").unwrap_or_else(|| ALLOWED.iter().map(|s| s.to_string()).collect());
        let code = crate::code_words::code(ctx.text, ctx.dialect);
        let mut used = crate::code_words::option_values(&code, &["CHARSET"], false);
        used.extend(crate::code_words::option_values(&code, &["CHARACTER", "SET"], false));
        used.into_iter().filter(|c| !allowed.contains(c)).map(|c| (None, Some(c))).collect()
    }
);
