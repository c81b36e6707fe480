use sqlparser::ast::{SetExpr, Statement};
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireMaxExecutionTime,
    RuleMeta {
        id: "require-max-execution-time",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a SELECT without a MAX_EXECUTION_TIME optimizer hint can run for as long as it likes",
        advice: "Add /*+ MAX_EXECUTION_TIME(ms) */ after SELECT (MySQL 5.7.8+; on MariaDB use SET STATEMENT max_statement_time = s FOR …)",
        bad: "SELECT id FROM orders WHERE status = 'new';",
        good: "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM orders WHERE status = 'new';",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::Query(q) = ctx.stmt else { return vec![] };
        let SetExpr::Select(s) = q.body.as_ref() else { return vec![] };
        if s.from.is_empty() {
            return vec![];
        }
        let hinted = s.optimizer_hints.iter().any(|h| h.to_string().to_ascii_uppercase().contains("MAX_EXECUTION_TIME"));
        if hinted { vec![] } else { vec![(None, None)] }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-max-execution-time").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-max-execution-time").count()
    }

    #[test]
    fn a_plain_comment_is_no_hint() {
        assert_eq!(fired("SELECT /* MAX_EXECUTION_TIME(1000) */ id FROM t WHERE a = 1;", SqlDialect::MySql), 1);
    }
}
