use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    NoNestedTransaction,
    RuleMeta {
        id: "no-nested-transaction",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "BEGIN inside an open transaction (PostgreSQL ignores it with a warning; MySQL silently commits the open one), or COMMIT/ROLLBACK with none open",
        advice: "Open one transaction and close it once; use SAVEPOINT for inner steps",
        bad: "BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;",
        good: "BEGIN;\nSELECT 1;\nCOMMIT;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, _settings| {
        let mut open = false;
        let mut out = Vec::new();
        for s in stmts {
            match crate::rules::file::no_uncommitted_transaction::tx_control(&s.upper) {
                Some(true) if open => out.push((s.index, None, Some("a transaction is already open".to_string()))),
                Some(true) => open = true,
                Some(false) if !open => out.push((s.index, None, Some("no transaction is open".to_string()))),
                Some(false) => open = false,
                None => {}
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-nested-transaction").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-nested-transaction").count()
    }

    #[test]
    fn a_commit_without_begin() {
        assert_eq!(fired("UPDATE t SET a = 1 WHERE id = 1;\nCOMMIT;", SqlDialect::MySql), 1);
        assert_eq!(fired("BEGIN;\nCOMMIT;\nBEGIN;\nCOMMIT;", SqlDialect::Postgres), 0);
    }
}
