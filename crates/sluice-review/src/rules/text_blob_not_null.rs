use sqlparser::ast::{ColumnOption, DataType};
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn lob(t: &DataType) -> bool {
    let s = t.to_string().to_ascii_lowercase();
    s.ends_with("text") || s.ends_with("blob")
}

rule!(
    TextBlobNotNull,
    RuleMeta {
        id: "text-blob-not-null",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a TEXT or BLOB column NOT NULL without a DEFAULT: every INSERT must name it (MySQL before 8.0.13 cannot give it a default)",
        advice: "Make it NULL, or give it a DEFAULT ('' needs MySQL 8.0.13+ or MariaDB 10.2+)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT NOT NULL);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT NULL);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| lob(c.data_type) && c.has(|o| matches!(o, ColumnOption::NotNull)) && c.default().is_none())
            .map(|c| (crate::rule::ident_at(c.name), Some(format!("{} {}", c.name, c.data_type))))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "text-blob-not-null").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "text-blob-not-null").count()
    }

    #[test]
    fn alter_forms_and_defaults() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN b BLOB NOT NULL;", SqlDialect::MySql), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY b MEDIUMTEXT NOT NULL DEFAULT '';", SqlDialect::MySql), 0);
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY, txt VARCHAR(9) NOT NULL COMMENT 'TEXT NOT NULL');", SqlDialect::MySql), 0);
    }
}
