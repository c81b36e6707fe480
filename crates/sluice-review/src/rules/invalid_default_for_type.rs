use sqlparser::ast::{DataType, Expr, Value};
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn numeric(t: &DataType) -> bool {
    let s = t.to_string().to_ascii_lowercase();
    ["int", "integer", "bigint", "smallint", "tinyint", "mediumint", "decimal", "numeric", "float", "double", "real"]
        .iter()
        .any(|n| s == *n || s.starts_with(&format!("{n}(")) || s.starts_with(&format!("{n} ")))
}

/// `YYYY-MM-DD` (the zero date included: it is the server's sql_mode, not the type, that refuses it).
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && s.chars().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

rule!(
    InvalidDefaultForType,
    RuleMeta {
        id: "invalid-default-for-type",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Error,
        summary: "the column's DEFAULT is not a value of its type (the server refuses it in strict mode, or stores 0)",
        advice: "Give a default of the column's type",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, qty INT DEFAULT '');",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, qty INT DEFAULT 0);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter_map(|c| {
                let Some(Expr::Value(v)) = c.default() else { return None };
                let (Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)) = &v.value else { return None };
                let bad = if numeric(c.data_type) {
                    s.trim().parse::<f64>().is_err()
                } else if matches!(c.data_type, DataType::Date) {
                    !looks_like_date(s)
                } else {
                    false
                };
                bad.then(|| (crate::rule::ident_at(c.name), Some(format!("{} {} DEFAULT '{s}'", c.name, c.data_type))))
            })
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "invalid-default-for-type").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "invalid-default-for-type").count()
    }

    #[test]
    fn numbers_as_strings_and_alter_forms() {
        assert_eq!(fired("CREATE TABLE t (a INT DEFAULT '1', b DECIMAL(5,2) DEFAULT '0.00', c DATE DEFAULT '2020-01-01');", SqlDialect::MySql), 0);
        assert_eq!(fired("ALTER TABLE t ADD COLUMN c DATE DEFAULT 'tomorrow';", SqlDialect::Postgres), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY c INT DEFAULT 'x';", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE t (c VARCHAR(5) DEFAULT '', d INT COMMENT 'DEFAULT x');", SqlDialect::MySql), 0);
    }
}
