use sqlparser::ast::ColumnOption;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    ColumnRequireDefault,
    RuleMeta {
        id: "column-require-default",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a column without a DEFAULT",
        advice: "Give every column a DEFAULT (keys, generated and auto-increment columns, TEXT and BLOB are left out)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL DEFAULT 'new');",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.how, super::columns::How::Create | super::columns::How::Add | super::columns::How::Redefine))
            .filter(|c| {
                let filled = c.default().is_some()
                    || c.is_primary_key()
                    || c.has(|o| matches!(o, ColumnOption::Generated { .. } | ColumnOption::Identity(_)) || o.to_string().eq_ignore_ascii_case("AUTO_INCREMENT"));
                let t = c.data_type.to_string().to_ascii_lowercase();
                !filled && !t.ends_with("text") && !t.ends_with("blob") && !t.contains("serial")
            })
            .map(|c| (crate::rule::ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "column-require-default").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "column-require-default").count()
    }

    #[test]
    fn alter_form() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN n INT COMMENT 'DEFAULT 1';", SqlDialect::MySql), 1);
    }
}
