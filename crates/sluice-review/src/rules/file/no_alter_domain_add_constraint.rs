use crate::finding::Level;
use crate::rule::starts_with_words;
use crate::rule::{Category, RuleMeta};
use crate::rules::POSTGRES;

file_rule!(
    NoAlterDomainAddConstraint,
    RuleMeta {
        id: "no-alter-domain-add-constraint",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "ALTER DOMAIN … ADD CONSTRAINT checks every column of every table that uses the domain, under lock",
        advice: "Add the check to the columns (NOT VALID, then VALIDATE), or add it to the domain NOT VALID and validate it later",
        bad: "ALTER DOMAIN positive_amount ADD CONSTRAINT positive CHECK (VALUE > 0);",
        good: "ALTER DOMAIN positive_amount ADD CONSTRAINT positive CHECK (VALUE > 0) NOT VALID;",
        ..RuleMeta::DEFAULT
    },
    |stmts, dialect, _settings| {
        let mut out = Vec::new();
        for s in stmts {
            if !starts_with_words(&s.upper, &["ALTER", "DOMAIN"]) {
                continue;
            }
            let code = crate::code_words::code(s.text, dialect);
            let adds = crate::code_words::has_word(&code, "ADD", true);
            let not_valid = code.windows(2).any(|w| w[0].depth == 0 && w[0].word.as_deref() == Some("NOT") && w[1].word.as_deref() == Some("VALID"));
            if adds && !not_valid {
                out.push((s.index, None, None));
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
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-alter-domain-add-constraint").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-alter-domain-add-constraint").count()
    }

    #[test]
    fn other_domain_changes() {
        assert_eq!(fired("ALTER DOMAIN d DROP NOT NULL;", SqlDialect::Postgres), 0);
        assert_eq!(fired("ALTER DOMAIN d VALIDATE CONSTRAINT positive; -- ADD CONSTRAINT", SqlDialect::Postgres), 0);
    }
}
