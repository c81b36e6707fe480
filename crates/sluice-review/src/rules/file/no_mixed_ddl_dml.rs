use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    NoMixedDdlDml,
    RuleMeta {
        id: "no-mixed-ddl-dml",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "the file mixes schema changes and data changes, which need different review, execution and rollback",
        advice: "Put schema changes and data changes in separate tickets or files",
        bad: "ALTER TABLE orders ADD COLUMN note TEXT;\nUPDATE orders SET note = '' WHERE id = 1;",
        good: "ALTER TABLE orders ADD COLUMN note TEXT;",
        ..RuleMeta::DEFAULT
    },
    |stmts, dialect, _settings| {
        let kind = |u: &str| {
            let w = u.split_whitespace().next().unwrap_or("");
            if matches!(w, "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE") {
                Some(true)
            } else if matches!(w, "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "MERGE") {
                Some(false)
            } else {
                None
            }
        };
        let Some(first) = stmts.iter().find_map(|s| kind(&s.upper)) else { return vec![] };
        stmts
            .iter()
            .find(|s| kind(&s.upper) == Some(!first))
            .map(|s| {
                let order = if first { "data change after schema change" } else { "schema change after data change" };
                let risk = match dialect {
                    crate::SqlDialect::MySql => "MySQL/MariaDB commit each DDL implicitly, so a failure leaves the data half changed",
                    crate::SqlDialect::Postgres => "in one transaction the DDL's locks are held while the data changes run",
                };
                vec![(s.index, None, Some(format!("{order}; {risk}")))]
            })
            .unwrap_or_default()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-mixed-ddl-dml").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-mixed-ddl-dml").count()
    }

    #[test]
    fn only_one_kind() {
        assert_eq!(fired("INSERT INTO t (a) VALUES (1);\nDELETE FROM t WHERE a = 2;", SqlDialect::MySql), 0);
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY);\nSELECT 'INSERT';", SqlDialect::MySql), 0);
    }
}
