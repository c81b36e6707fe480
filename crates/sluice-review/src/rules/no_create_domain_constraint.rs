use sqlparser::ast::Statement;
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoCreateDomainConstraint,
    RuleMeta {
        id: "no-create-domain-constraint",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "a domain with a CHECK constraint: changing that check later validates every column that uses the domain, under lock",
        advice: "Put the CHECK on the table columns (added NOT VALID, then validated) instead of on the domain",
        bad: "CREATE DOMAIN positive_amount AS numeric(15, 5) CHECK (VALUE > 0);",
        good: "CREATE DOMAIN amount AS numeric(15, 5);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateDomain(d) if !d.constraints.is_empty() => vec![(None, Some(d.name.to_string()))],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-create-domain-constraint").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-create-domain-constraint").count()
    }

    #[test]
    fn a_domain_without_a_check() {
        assert_eq!(fired("CREATE DOMAIN \"check\" AS text; -- CHECK (VALUE > 0)", SqlDialect::Postgres), 0);
    }
}
