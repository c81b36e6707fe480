use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Charsets allowed by default (policy: `[params.charset-allow-list] allowed = [...]`).
const ALLOWED: &[&str] = &["utf8mb4", "binary", "ascii"];

/// The charsets a statement names that the policy does not allow.
fn used(code: &[crate::code_words::Code], settings: &crate::Settings) -> Vec<(crate::rule::At, Option<String>)> {
        let allowed = settings.list(META.id, "allowed").unwrap_or_else(|| ALLOWED.iter().map(|s| s.to_string()).collect());
            let mut used = crate::code_words::option_values(code, &["CHARSET"], false);
        used.extend(crate::code_words::option_values(code, &["CHARACTER", "SET"], false));
    // `CONVERT TO CHARACTER SET x` (the TO makes the option reader take it for a name).
    for (i, w) in code.windows(4).enumerate() {
        let words: Vec<Option<&str>> = w.iter().map(|c| c.word.as_deref()).collect();
        if words == [Some("CONVERT"), Some("TO"), Some("CHARACTER"), Some("SET")]
            && let Some(v) = code.get(i + 4)
        {
            used.push(v.value.to_ascii_lowercase());
        }
    }
        used.into_iter().filter(|c| !allowed.contains(c)).map(|c| (None, Some(c))).collect()
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
        used(ctx.code(), ctx.settings)
    },
    unparsed: |u| {
        crate::code_words::alter_database(u.text, u.dialect).map(|code| used(&code, u.settings)).unwrap_or_default()
    }
);

#[cfg(test)]
mod tests {
    #[test]
    fn alter_database_and_alter_column_forms() {
        let fired = |sql: &str| crate::review(sql, crate::SqlDialect::MySql).findings.iter().filter(|f| f.rule == "charset-allow-list").count();
        assert_eq!(fired("ALTER DATABASE d CHARACTER SET latin1;"), 1);
        assert_eq!(fired("ALTER TABLE t ADD COLUMN a VARCHAR(5) CHARSET latin1;"), 1);
        assert_eq!(fired("ALTER TABLE t CONVERT TO CHARACTER SET latin1;"), 1);
        assert_eq!(fired("ALTER DATABASE d CHARACTER SET utf8mb4; -- CHARSET latin1"), 0);
    }
}
