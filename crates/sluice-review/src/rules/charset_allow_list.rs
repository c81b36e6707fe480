use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Charsets allowed by default (policy: `[params.charset-allow-list] allowed = [...]`).
const ALLOWED: &[&str] = &["utf8mb4", "binary", "ascii"];

/// The values of `CHARSET=x`, `CHARACTER SET x`, `DEFAULT CHARSET x` in a statement's text.
pub(crate) fn options_after(text: &str, keywords: &[&str]) -> Vec<String> {
    let upper = text.to_ascii_uppercase();
    let mut out = Vec::new();
    for kw in keywords {
        let mut from = 0;
        while let Some(p) = upper[from..].find(kw) {
            let at = from + p + kw.len();
            let rest = text[at..].trim_start_matches([' ', '=']);
            let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !word.is_empty() {
                out.push(word.to_ascii_lowercase());
            }
            from = at;
        }
    }
    out
}

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
    },
    |ctx| {
        if !matches!(
            ctx.stmt,
            sqlparser::ast::Statement::CreateTable(_) | sqlparser::ast::Statement::AlterTable(_) | sqlparser::ast::Statement::CreateDatabase { .. }
        ) {
            return vec![];
        }
        let allowed = ctx.settings.list(META.id, "allowed").unwrap_or_else(|| ALLOWED.iter().map(|s| s.to_string()).collect());
        options_after(ctx.text, &["CHARSET", "CHARACTER SET"]).into_iter().filter(|c| !allowed.contains(c)).map(|c| (None, Some(c))).collect()
    }
);
