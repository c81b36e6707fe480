use sqlparser::ast::ColumnOption;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoNullableColumns,
    RuleMeta {
        id: "no-nullable-columns",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a column that accepts NULL (three-valued logic in every query that reads it)",
        advice: "Declare it NOT NULL with a DEFAULT",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, note VARCHAR(20));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, note VARCHAR(20) NOT NULL DEFAULT '');",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| matches!(c.how, super::columns::How::Create | super::columns::How::Add | super::columns::How::Redefine))
            .filter(|c| !c.is_primary_key() && !c.has(|o| matches!(o, ColumnOption::NotNull | ColumnOption::Identity(_))))
            .map(|c| (crate::rule::ident_at(c.name), Some(c.name.value.clone())))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-nullable-columns").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-nullable-columns").count()
    }

    #[test]
    fn alter_form() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN n INT COMMENT 'NOT NULL';", SqlDialect::MySql), 1);
    }
}
