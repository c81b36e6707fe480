use sqlparser::ast::{ColumnOption, DataType, Statement, TableConstraint};

use crate::rule::ident_at;
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

fn integer(t: &DataType) -> bool {
    let s = t.to_string().to_ascii_lowercase();
    ["int", "integer", "bigint", "mediumint", "smallint", "tinyint"].iter().any(|i| s == *i || s.starts_with(&format!("{i}(")) || s.starts_with(&format!("{i} ")))
}

rule!(
    IntegerPrimaryKey,
    RuleMeta {
        id: "integer-primary-key",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "a primary key that is not an integer: InnoDB clusters rows by the key and copies it into every secondary index",
        advice: "Use a BIGINT (AUTO_INCREMENT) key and put a UNIQUE index on the natural key",
        bad: "CREATE TABLE t (id VARCHAR(36) PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36) UNIQUE);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        // A column declared as the key in ALTER TABLE (ADD COLUMN … PRIMARY KEY, MODIFY/CHANGE … PRIMARY KEY).
        if let Statement::AlterTable(_) = ctx.stmt {
            return crate::rules::columns::columns(ctx.stmt)
                .into_iter()
                .filter(|c| c.is_primary_key() && !integer(c.data_type))
                .map(|c| (ident_at(c.name), Some(format!("{} {}", c.name, c.data_type))))
                .collect();
        }
        let Statement::CreateTable(t) = ctx.stmt else { return vec![] };
        let keyed: Vec<String> = t
            .constraints
            .iter()
            .filter_map(|c| match c {
                TableConstraint::PrimaryKey(p) => Some(p.columns.iter().map(|c| c.column.expr.to_string().trim_matches('`').to_ascii_lowercase())),
                _ => None,
            })
            .flatten()
            .collect();
        t.columns
            .iter()
            .filter(|c| c.options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_))) || keyed.contains(&c.name.value.to_ascii_lowercase()))
            .filter(|c| !integer(&c.data_type))
            .map(|c| (ident_at(&c.name), Some(format!("{} {}", c.name, c.data_type))))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "integer-primary-key").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "integer-primary-key").count()
    }

    #[test]
    fn table_level_keys_count() {
        assert_eq!(fired("CREATE TABLE t (code CHAR(3), PRIMARY KEY (code));", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE t (id INT UNSIGNED NOT NULL, PRIMARY KEY (`id`)) COMMENT 'PRIMARY KEY varchar';", SqlDialect::MySql), 0);
    }
}
