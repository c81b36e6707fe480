use sqlparser::ast::Statement;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    ColumnRequired,
    RuleMeta {
        id: "column-required",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the new table lacks a column the team requires on every table",
        advice: "Add the required columns (list: [params.column-required] columns)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, created_at TIMESTAMP NOT NULL);",
        params: &[crate::rule::Param { name: "columns", kind: crate::rule::ParamKind::Names, default: "none (set a list to turn the rule on)", example: "[\"id\", \"created_at\"]" }],
        opt_in: true,
    },
    |ctx| {
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        if t.query.is_some() || t.like.is_some() {
            return vec![];
        }
        let required = ctx.settings.list(META.id, "columns").unwrap_or_default();
        let have: Vec<String> = t.columns.iter().map(|c| c.name.value.to_ascii_lowercase()).collect();
        let missing: Vec<&String> = required.iter().filter(|r| !have.contains(r)).collect();
        if missing.is_empty() {
            vec![]
        } else {
            vec![(None, Some(missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))]
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "column-required").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "column-required").count()
    }

    #[test]
    fn names_in_comments_do_not_count() {
        assert_eq!(fired("CREATE TABLE t (id BIGINT PRIMARY KEY COMMENT 'created_at');", SqlDialect::MySql), 1);
    }
}
