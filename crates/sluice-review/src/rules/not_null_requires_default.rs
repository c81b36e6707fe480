use sqlparser::ast::ColumnOption;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

rule!(
    NotNullRequiresDefault,
    RuleMeta {
        id: "not-null-requires-default",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "adding a NOT NULL column without a DEFAULT to a table that has rows fails, or fills them with zero values",
        advice: "Give the column a DEFAULT, or add it nullable, backfill, then set NOT NULL",
        bad: "ALTER TABLE orders ADD COLUMN region VARCHAR(8) NOT NULL;",
        good: "ALTER TABLE orders ADD COLUMN region VARCHAR(8) NOT NULL DEFAULT 'eu';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter()
            // A table created earlier in the file has no rows to fill.
            .filter(|c| c.how == super::columns::How::Add && !ctx.is_new_table(c.table))
            .filter_map(|c| {
                let not_null = c.has(|o| matches!(o, ColumnOption::NotNull));
                // Values come from somewhere: a DEFAULT, a generated or identity column, AUTO_INCREMENT, serial.
                let filled = c.has(|o| match o {
                    ColumnOption::Default(_) | ColumnOption::Generated { .. } | ColumnOption::Identity(_) => true,
                    ColumnOption::DialectSpecific(tokens) => tokens.iter().any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")),
                    _ => false,
                }) || c.data_type.to_string().to_ascii_lowercase().contains("serial");
                let what = match ctx.dialect {
                    crate::SqlDialect::Postgres => "PostgreSQL refuses it on a table with rows",
                    crate::SqlDialect::MySql => "MySQL/MariaDB fill the existing rows with 0 or '' unless in strict mode",
                };
                (not_null && !filled).then(|| (ident_at(c.name), Some(format!("{}: {what}", c.name.value))))
            })
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fires(sql: &str, d: SqlDialect) -> bool {
        crate::review(sql, d).findings.iter().any(|f| f.rule == "not-null-requires-default")
    }

    #[test]
    fn columns_that_fill_themselves_need_no_default() {
        assert!(!fires("ALTER TABLE t ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY;", SqlDialect::MySql));
        assert!(!fires("ALTER TABLE t ADD COLUMN id bigserial NOT NULL;", SqlDialect::Postgres));
        assert!(!fires("ALTER TABLE t ADD COLUMN id bigint NOT NULL GENERATED ALWAYS AS IDENTITY;", SqlDialect::Postgres));
        assert!(fires("ALTER TABLE t ADD COLUMN region VARCHAR(8) NOT NULL;", SqlDialect::MySql));
        assert!(!fires("CREATE TABLE t (id INT PRIMARY KEY);\nALTER TABLE t ADD COLUMN region VARCHAR(8) NOT NULL;", SqlDialect::MySql), "a table new in the file is empty");
        assert!(fires("ALTER TABLE t ADD COLUMN region VARCHAR(8) NOT NULL;\nCREATE TABLE t2 (id INT PRIMARY KEY);", SqlDialect::MySql));
        let pg = crate::review("ALTER TABLE t ADD COLUMN region text NOT NULL;", SqlDialect::Postgres);
        assert!(pg.findings.iter().any(|f| f.rule == "not-null-requires-default" && f.message.contains("PostgreSQL") && !f.message.contains("MySQL")));
    }
}
