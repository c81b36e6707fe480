use sqlparser::ast::{SetExpr, Statement};
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireWhereForSelect,
    RuleMeta {
        id: "require-where-for-select",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "a SELECT from a table without WHERE or LIMIT reads the whole table",
        advice: "Add a WHERE clause or a LIMIT",
        bad: "SELECT id, status FROM orders;",
        good: "SELECT id, status FROM orders WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::Query(q) = ctx.stmt else { return vec![] };
        if q.limit_clause.is_some() {
            return vec![];
        }
        match q.body.as_ref() {
            SetExpr::Select(s) if !s.from.is_empty() && s.selection.is_none() => vec![(None, None)],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-where-for-select").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-where-for-select").count()
    }

    #[test]
    fn constants_and_limits() {
        assert_eq!(fired("SELECT 1;", SqlDialect::Postgres), 0);
        assert_eq!(fired("SELECT id FROM t LIMIT 10;", SqlDialect::Postgres), 0);
        assert_eq!(fired("SELECT 'WHERE' AS w FROM t; -- WHERE id = 1", SqlDialect::MySql), 1);
    }
}
