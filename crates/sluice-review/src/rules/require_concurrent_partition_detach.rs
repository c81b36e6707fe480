use sqlparser::ast::Statement;
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireConcurrentPartitionDetach,
    RuleMeta {
        id: "require-concurrent-partition-detach",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the parent table",
        advice: "Use ALTER TABLE … DETACH PARTITION … CONCURRENTLY (PostgreSQL 14+, outside a transaction)",
        bad: "ALTER TABLE measurements DETACH PARTITION measurements_2023;",
        good: "ALTER TABLE measurements DETACH PARTITION measurements_2023 CONCURRENTLY;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        if !matches!(ctx.stmt, Statement::AlterTable(_)) {
            return vec![];
        }
        let code = ctx.code();
        let detaches = code.windows(2).any(|w| w[0].depth == 0 && w[0].word.as_deref() == Some("DETACH") && w[1].word.as_deref() == Some("PARTITION"));
        let concurrently = crate::code_words::has_word(code, "CONCURRENTLY", true) || crate::code_words::has_word(code, "FINALIZE", true);
        if detaches && !concurrently { vec![(None, None)] } else { vec![] }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-concurrent-partition-detach").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-concurrent-partition-detach").count()
    }

    #[test]
    fn words_in_names_and_comments_do_not_count() {
        assert_eq!(fired("ALTER TABLE m DETACH PARTITION m_2023 /* CONCURRENTLY */;", SqlDialect::Postgres), 1);
        assert_eq!(fired("ALTER TABLE m DETACH PARTITION m_2023 FINALIZE;", SqlDialect::Postgres), 0);
        assert_eq!(fired("ALTER TABLE \"detach partition\" ADD COLUMN c int;", SqlDialect::Postgres), 0);
    }
}
