use sqlparser::ast::Statement;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoPartitionedTables,
    RuleMeta {
        id: "no-partitioned-tables",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the table is partitioned (the team keeps tables unpartitioned: partition maintenance and key limits)",
        advice: "Use one table, or archive old rows instead",
        bad: "CREATE TABLE t (id INT PRIMARY KEY) PARTITION BY HASH (id);",
        good: "CREATE TABLE t (id INT PRIMARY KEY);",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::CreateTable(_) | Statement::AlterTable(_)) {
            return vec![];
        }
        let code = ctx.code();
        let partitioned = code.windows(2).any(|w| w[0].depth == 0 && w[0].word.as_deref() == Some("PARTITION") && w[1].word.as_deref() == Some("BY"));
        if partitioned { vec![(None, None)] } else { vec![] }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-partitioned-tables").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-partitioned-tables").count()
    }

    #[test]
    fn postgres_and_words_elsewhere() {
        assert_eq!(fired("CREATE TABLE m (at date) PARTITION BY RANGE (at);", SqlDialect::Postgres), 1);
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY COMMENT 'PARTITION BY');", SqlDialect::MySql), 0);
    }
}
