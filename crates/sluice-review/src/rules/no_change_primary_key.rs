use sqlparser::ast::{AlterTableOperation, Statement};

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoChangePrimaryKey,
    RuleMeta {
        id: "no-change-primary-key",
        category: Category::MigrationSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "changing the primary key rebuilds the table and breaks row identity for replication and change capture",
        advice: "Add a new unique key instead, or plan the change as a table copy with an online tool",
        bad: "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (order_no);",
        good: "ALTER TABLE orders ADD CONSTRAINT uk_orders_no UNIQUE (order_no);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        // Adding a key to a table that has none is not a change (the server refuses a second one; pg_dump
        // and Rails' structure.sql add every key this way): only dropping the key is.
        let drops = a.operations.iter().any(|o| match o {
            AlterTableOperation::DropPrimaryKey { .. } => true,
            // PostgreSQL names a primary key `<table>_pkey` unless told otherwise.
            AlterTableOperation::DropConstraint { name, .. } => name.value.to_ascii_lowercase().ends_with("_pkey"),
            _ => false,
        });
        let detail = match ctx.dialect {
            crate::SqlDialect::MySql => "InnoDB clusters the rows by it, so the whole table is copied",
            crate::SqlDialect::Postgres => "the new key's index is built while the table is locked against writes",
        };
        if drops { vec![(None, Some(detail.to_string()))] } else { vec![] }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fires(sql: &str, d: SqlDialect) -> Vec<String> {
        crate::review(sql, d).findings.into_iter().filter(|f| f.rule == "no-change-primary-key").map(|f| f.message).collect()
    }

    #[test]
    fn adding_a_first_key_is_not_a_change_and_messages_name_the_engine() {
        assert!(fires("ALTER TABLE ONLY public.film ADD CONSTRAINT film_pkey PRIMARY KEY (film_id);", SqlDialect::Postgres).is_empty());
        assert!(fires("ALTER TABLE t ADD PRIMARY KEY (id);", SqlDialect::MySql).is_empty());
        let pg = fires("ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (order_no);", SqlDialect::Postgres);
        assert!(pg.len() == 1 && !pg[0].contains("InnoDB") && pg[0].contains("locked"), "{pg:?}");
        let my = fires("ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (order_no);", SqlDialect::MySql);
        assert!(my.len() == 1 && my[0].contains("InnoDB"), "{my:?}");
    }
}
