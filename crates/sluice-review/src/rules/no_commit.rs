use sqlparser::ast::Statement;
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoCommit,
    RuleMeta {
        id: "no-commit",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a COMMIT inside a change: the runner decides where transactions end, and a COMMIT midway leaves half the change applied when a later statement fails",
        advice: "Remove the COMMIT and let the ticket's execution mode group the statements",
        bad: "UPDATE orders SET status = 'paid' WHERE id = 1;\nCOMMIT;",
        good: "UPDATE orders SET status = 'paid' WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Commit { .. } => vec![(None, None)],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-commit").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-commit").count()
    }

    #[test]
    fn the_word_elsewhere() {
        assert_eq!(fired("INSERT INTO log (`commit`) VALUES ('COMMIT'); -- COMMIT", SqlDialect::MySql), 0);
    }
}
