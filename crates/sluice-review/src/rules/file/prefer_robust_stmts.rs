use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;

file_rule!(
    PreferRobustStmts,
    RuleMeta {
        id: "prefer-robust-stmts",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "outside a transaction a migration that fails halfway cannot simply be run again: CREATE and ADD without IF NOT EXISTS (or DROP without IF EXISTS) fail on what the first run already did",
        advice: "Use IF NOT EXISTS / IF EXISTS, or run the migration in one transaction",
        bad: "ALTER TABLE orders ADD COLUMN note text;",
        good: "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;",
        ..RuleMeta::DEFAULT
    },
    |stmts, dialect, _settings| {
        if stmts.iter().any(|s| crate::rules::file::no_uncommitted_transaction::tx_control(&s.upper) == Some(true)) {
            return vec![];
        }
        let mut out = Vec::new();
        for s in stmts {
            let code = crate::code_words::code(s.text, dialect);
            let w = |i: usize| code.get(i).and_then(|c| c.word.as_deref());
            let guarded_at = |i: usize, exists: &[&str]| exists.iter().enumerate().all(|(k, e)| w(i + k) == Some(*e));
            let mut fragile = Vec::new();
            match (w(0), w(1)) {
                (Some("CREATE"), _) => {
                    // CREATE [UNIQUE] INDEX [CONCURRENTLY] / CREATE [UNLOGGED] TABLE, then IF NOT EXISTS.
                    let mut i = 1;
                    while matches!(w(i), Some("UNIQUE" | "UNLOGGED" | "TEMP" | "TEMPORARY")) {
                        i += 1;
                    }
                    if matches!(w(i), Some("INDEX" | "TABLE")) {
                        let mut j = i + 1;
                        if w(j) == Some("CONCURRENTLY") {
                            j += 1;
                        }
                        if !guarded_at(j, &["IF", "NOT", "EXISTS"]) {
                            fragile.push(format!("CREATE {}", w(i).unwrap_or_default()));
                        }
                    }
                }
                (Some("DROP"), Some(kind @ ("TABLE" | "INDEX"))) => {
                    let j = if w(2) == Some("CONCURRENTLY") { 3 } else { 2 };
                    if !guarded_at(j, &["IF", "EXISTS"]) {
                        fragile.push(format!("DROP {kind}"));
                    }
                }
                (Some("ALTER"), Some("TABLE")) => {
                    for (i, c) in code.iter().enumerate() {
                        if c.depth != 0 {
                            continue;
                        }
                        let j = if w(i + 1) == Some("COLUMN") { i + 2 } else { i + 1 };
                        match c.word.as_deref() {
                            Some("ADD")
                                if !matches!(w(i + 1), Some("CONSTRAINT" | "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK" | "EXCLUDE"))
                                    && !guarded_at(j, &["IF", "NOT", "EXISTS"]) =>
                            {
                                fragile.push("ADD COLUMN".to_string())
                            }
                            Some("DROP")
                                if !matches!(w(i + 1), Some("CONSTRAINT" | "DEFAULT" | "NOT" | "EXPRESSION" | "IDENTITY"))
                                    && !guarded_at(j, &["IF", "EXISTS"]) =>
                            {
                                fragile.push("DROP COLUMN".to_string())
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            fragile.dedup();
            if !fragile.is_empty() {
                out.push((s.index, None, Some(fragile.join(", "))));
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
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "prefer-robust-stmts").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "prefer-robust-stmts").count()
    }

    #[test]
    fn guarded_or_in_a_transaction() {
        assert_eq!(fired("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON t (a);", SqlDialect::Postgres), 0);
        assert_eq!(fired("DROP TABLE IF EXISTS t;", SqlDialect::Postgres), 0);
        assert_eq!(fired("BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;", SqlDialect::Postgres), 0);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c DROP NOT NULL, ADD CONSTRAINT c_pos CHECK (c > 0);", SqlDialect::Postgres), 0);
        assert_eq!(fired("ALTER TABLE t DROP COLUMN c;", SqlDialect::Postgres), 1);
        assert_eq!(fired("ALTER TABLE \"add\" ALTER COLUMN c SET DEFAULT 'ADD COLUMN x';", SqlDialect::Postgres), 0);
    }
}
