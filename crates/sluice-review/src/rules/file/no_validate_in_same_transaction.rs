use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;

/// The constraints (lower-cased) an ALTER TABLE adds NOT VALID.
pub(crate) fn added_not_valid(stmt: &sqlparser::ast::Statement) -> Vec<String> {
    use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};
    let Statement::AlterTable(a) = stmt else { return Vec::new() };
    a.operations
        .iter()
        .filter_map(|o| match o {
            AlterTableOperation::AddConstraint { constraint, not_valid: true } => match constraint {
                TableConstraint::ForeignKey(fk) => fk.name.as_ref(),
                TableConstraint::Check(c) => c.name.as_ref(),
                _ => None,
            },
            _ => None,
        })
        .map(|n| n.value.to_ascii_lowercase())
        .collect()
}

/// The constraints (lower-cased) an ALTER TABLE validates.
pub(crate) fn validated(stmt: &sqlparser::ast::Statement) -> Vec<String> {
    use sqlparser::ast::{AlterTableOperation, Statement};
    let Statement::AlterTable(a) = stmt else { return Vec::new() };
    a.operations
        .iter()
        .filter_map(|o| match o {
            AlterTableOperation::ValidateConstraint { name } => Some(name.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

file_rule!(
    NoValidateInSameTransaction,
    RuleMeta {
        id: "no-validate-in-same-transaction",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "a constraint added NOT VALID is validated in the same transaction: the ACCESS EXCLUSIVE lock of the ADD is held through the whole validating scan, so NOT VALID gains nothing",
        advice: "Commit after ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in its own transaction",
        bad: "BEGIN;\nALTER TABLE emails ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE emails VALIDATE CONSTRAINT fk_user;\nCOMMIT;",
        good: "BEGIN;\nALTER TABLE emails ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nCOMMIT;\nALTER TABLE emails VALIDATE CONSTRAINT fk_user;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, _settings| {
        let mut open = false;
        let mut added: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for s in stmts {
            if let Some(begins) = crate::rules::file::no_uncommitted_transaction::tx_control(&s.upper) {
                open = begins;
                added.clear();
                continue;
            }
            if !open {
                continue;
            }
            for v in &s.facts.validated {
                if added.contains(&v.as_str()) {
                    out.push((s.index, None, Some(v.clone())));
                }
            }
            added.extend(s.facts.added_not_valid.iter().map(String::as_str));
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-validate-in-same-transaction").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-validate-in-same-transaction").count()
    }

    #[test]
    fn outside_a_transaction_or_another_constraint() {
        assert_eq!(fired("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c;", SqlDialect::Postgres), 0);
        assert_eq!(
            fired("BEGIN;\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT d;\nCOMMIT;", SqlDialect::Postgres),
            0
        );
        assert_eq!(
            fired(
                "BEGIN;\nALTER TABLE t ADD CONSTRAINT \"C\" CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT \"C\";\nCOMMIT;",
                SqlDialect::Postgres
            ),
            1
        );
        assert_eq!(fired("BEGIN;\nSELECT 'VALIDATE CONSTRAINT c';\nCOMMIT;", SqlDialect::Postgres), 0);
    }
}
