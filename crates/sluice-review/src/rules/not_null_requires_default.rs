use sqlparser::ast::{AlterTableOperation, ColumnOption, Statement};

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
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AddColumn { column_def, .. } => {
                    let not_null = column_def.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull));
                    // Values come from somewhere: a DEFAULT, a generated or identity column, AUTO_INCREMENT, serial.
                    let filled = column_def.options.iter().any(|o| match &o.option {
                        ColumnOption::Default(_) | ColumnOption::Generated { .. } | ColumnOption::Identity(_) => true,
                        ColumnOption::DialectSpecific(tokens) => tokens.iter().any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")),
                        _ => false,
                    }) || column_def.data_type.to_string().to_ascii_lowercase().contains("serial");
                    let what = match ctx.dialect {
                        crate::SqlDialect::Postgres => "PostgreSQL refuses it on a table with rows",
                        crate::SqlDialect::MySql => "MySQL/MariaDB fill the existing rows with 0 or '' unless in strict mode",
                    };
                    (not_null && !filled).then(|| (ident_at(&column_def.name), Some(format!("{}: {what}", column_def.name.value))))
                }
                _ => None,
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
        let pg = crate::review("ALTER TABLE t ADD COLUMN region text NOT NULL;", SqlDialect::Postgres);
        assert!(pg.findings.iter().any(|f| f.rule == "not-null-requires-default" && f.message.contains("PostgreSQL") && !f.message.contains("MySQL")));
    }
}
