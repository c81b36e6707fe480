use sqlparser::ast::DataType;

use crate::rule::ident_at;
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn narrow(t: &DataType) -> bool {
    match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) | DataType::SmallInt(_) | DataType::Int2(_) => true,
        DataType::Custom(n, _) => matches!(n.to_string().to_ascii_lowercase().as_str(), "serial" | "serial4" | "smallserial" | "serial2"),
        _ => false,
    }
}

rule!(
    PreferBigint,
    RuleMeta {
        id: "prefer-bigint",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "an int or smallint column: counters and ids outgrow 32 and 16 bits, and widening later rewrites the table",
        advice: "Use bigint (8 bytes; the difference is rarely worth the migration)",
        bad: "CREATE TABLE visits (id bigint PRIMARY KEY, count int);",
        good: "CREATE TABLE visits (id bigint PRIMARY KEY, count bigint);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            // A key column is prefer-bigint-primary-key's finding.
            .filter(|c| !c.is_primary_key() && narrow(c.data_type))
            .map(|c| (ident_at(c.name), Some(format!("{} {}", c.name, c.data_type))))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "prefer-bigint").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "prefer-bigint").count()
    }

    #[test]
    fn alter_forms_and_bigint() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN n smallint;", SqlDialect::Postgres), 1);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN n TYPE integer;", SqlDialect::Postgres), 1);
        assert_eq!(fired("CREATE TABLE t (id bigint PRIMARY KEY, \"int\" bigint, n bigint COMMENT 'int');", SqlDialect::Postgres), 0);
    }
}
