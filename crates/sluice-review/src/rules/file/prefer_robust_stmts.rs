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
    |stmts, _dialect, _settings| {
        if stmts.iter().any(|s| crate::rules::file::no_uncommitted_transaction::tx_control(&s.upper) == Some(true)) {
            return vec![];
        }
        stmts.iter().filter(|s| !s.facts.unguarded.is_empty()).map(|s| (s.index, None, Some(s.facts.unguarded.join(", ")))).collect()
    }
);

/// What a statement creates or drops without IF [NOT] EXISTS, read from its AST.
pub(crate) fn unguarded(stmt: &sqlparser::ast::Statement) -> Vec<&'static str> {
    use sqlparser::ast::{AlterTableOperation, ObjectType, Statement};
    let mut out = Vec::new();
    match stmt {
        Statement::CreateTable(t) if !t.if_not_exists && !t.temporary => out.push("CREATE TABLE"),
        Statement::CreateIndex(ci) if !ci.if_not_exists => out.push("CREATE INDEX"),
        Statement::Drop { object_type: ObjectType::Table, if_exists: false, .. } => out.push("DROP TABLE"),
        Statement::Drop { object_type: ObjectType::Index, if_exists: false, .. } => out.push("DROP INDEX"),
        Statement::AlterTable(a) => {
            for op in &a.operations {
                match op {
                    AlterTableOperation::AddColumn { if_not_exists: false, .. } => out.push("ADD COLUMN"),
                    AlterTableOperation::DropColumn { if_exists: false, .. } => out.push("DROP COLUMN"),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out.dedup();
    out
}

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
