use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// The collations a statement names that the policy does not allow.
fn used(code: &[crate::code_words::Code], settings: &crate::Settings) -> Vec<(crate::rule::At, Option<String>)> {
        // Default: every utf8mb4 collation and binary; a policy's `allowed` list replaces that.
        let allowed = settings.list(META.id, "allowed");
        let ok = |c: &str| match &allowed {
            Some(list) => list.iter().any(|a| a == c),
            None => c.starts_with("utf8mb4_") || c == "binary",
        };
            crate::code_words::option_values(code, &["COLLATE"], false).into_iter().filter(|c| !ok(c)).map(|c| (None, Some(c))).collect()
}

rule!(
    CollationAllowList,
    RuleMeta {
        id: "collation-allow-list",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a collation outside utf8mb4_* is used",
        advice: "Use a utf8mb4 collation (utf8mb4_0900_ai_ci on MySQL 8, utf8mb4_unicode_ci on MariaDB)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY) COLLATE=latin1_swedish_ci;",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY) COLLATE=utf8mb4_unicode_ci;",
        params: &[crate::rule::Param { name: "allowed", kind: crate::rule::ParamKind::Names, default: "any collation of an allowed charset", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, sqlparser::ast::Statement::CreateTable(_) | sqlparser::ast::Statement::AlterTable(_)) {
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
    fn alter_database_form() {
        let fired = |sql: &str| crate::review(sql, crate::SqlDialect::MySql).findings.iter().filter(|f| f.rule == "collation-allow-list").count();
        assert_eq!(fired("ALTER DATABASE test COLLATE latin1_bin;"), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY a VARCHAR(5) COLLATE latin1_bin;"), 1);
        assert_eq!(fired("ALTER DATABASE test COLLATE utf8mb4_bin; /* COLLATE latin1_bin */"), 0);
    }
}
