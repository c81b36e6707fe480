use crate::finding::Level;
use crate::rule::starts_with_words;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

/// Whether a statement opens or closes a transaction block (first words).
pub(crate) fn tx_control(upper: &str) -> Option<bool> {
    if starts_with_words(upper, &["BEGIN"]) || starts_with_words(upper, &["START", "TRANSACTION"]) {
        Some(true)
    } else if starts_with_words(upper, &["COMMIT"]) || starts_with_words(upper, &["ROLLBACK"]) || starts_with_words(upper, &["END"]) {
        // `ROLLBACK TO SAVEPOINT` keeps the transaction open.
        (!upper.contains(" TO ")).then_some(false)
    } else {
        None
    }
}

file_rule!(
    NoUncommittedTransaction,
    RuleMeta {
        id: "no-uncommitted-transaction",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "the file opens a transaction that it never commits: the session ends and everything in it is rolled back (or held open, with its locks, by a runner that keeps the connection)",
        advice: "End the transaction with COMMIT",
        bad: "BEGIN;\nCREATE TABLE users (id bigint PRIMARY KEY);",
        good: "BEGIN;\nCREATE TABLE users (id bigint PRIMARY KEY);\nCOMMIT;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, _settings| {
        let mut open: Option<usize> = None;
        for s in stmts {
            match tx_control(&s.upper) {
                Some(true) => open = open.or(Some(s.index)),
                Some(false) => open = None,
                None => {}
            }
        }
        open.map(|i| vec![(i, None, None)]).unwrap_or_default()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-uncommitted-transaction").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-uncommitted-transaction").count()
    }

    #[test]
    fn committed_or_rolled_back() {
        assert_eq!(fired("START TRANSACTION;\nUPDATE t SET a = 1 WHERE id = 1;\nROLLBACK;", SqlDialect::MySql), 0);
        assert_eq!(fired("BEGIN;\nSAVEPOINT a;\nROLLBACK TO SAVEPOINT a;", SqlDialect::Postgres), 1, "a rollback to a savepoint keeps it open");
        assert_eq!(fired("SELECT 'BEGIN';", SqlDialect::Postgres), 0);
    }
}
