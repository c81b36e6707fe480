//! A file rule because keys are often added after the table: pg_dump and Rails' `structure.sql` write every
//! primary key as `ALTER TABLE ONLY … ADD CONSTRAINT … PRIMARY KEY` at the end of the file, and MySQL
//! migrations use `ALTER TABLE … ADD PRIMARY KEY` or `MODIFY … PRIMARY KEY`. A table counts as keyed when
//! the file gives it a key anywhere after creating it.

use sqlparser::ast::{AlterTableOperation, ColumnOption, CreateTable, Statement, TableConstraint};

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    RequirePrimaryKey,
    RuleMeta {
        id: "require-primary-key",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Error,
        summary: "the table has no primary key",
        advice: "Add a primary key: replication, change capture and online schema changes need one to find rows",
        bad: "CREATE TABLE events (name VARCHAR(50), at TIMESTAMP);",
        good: "CREATE TABLE events (id BIGINT PRIMARY KEY, name VARCHAR(50));",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        let mut out = Vec::new();
        // Tables the file gives a key: created with one, or keyed by a later ALTER.
        let keyed = |table: &str, before: usize| {
            stmts.iter().take(before).any(|s| s.facts.created_table.as_deref() == Some(table) && s.facts.created_without_key.is_none())
                || stmts.iter().any(|s| s.facts.adds_primary_key.as_deref() == Some(table))
        };
        for (k, s) in stmts.iter().enumerate() {
            let Some((table, shown)) = &s.facts.created_without_key else { continue };
            let keyed_later = stmts[k + 1..].iter().any(|later| later.facts.adds_primary_key.as_deref() == Some(table.as_str()));
            // A partition attached to a keyed table has the parent's key (PostgreSQL builds its index).
            let attached_to_keyed = stmts[k + 1..]
                .iter()
                .any(|later| later.facts.attaches_partition.as_ref().is_some_and(|(parent, child)| child == table && keyed(parent, stmts.len())));
            if !keyed_later && !attached_to_keyed {
                out.push((s.index, None, Some(shown.clone())));
            }
        }
        out
    }
);

/// A CREATE TABLE that defines no primary key: (lower-cased table name, the name as written). Tables made
/// from a query or LIKE another are left out (their key is not in the statement).
pub(crate) fn created_without_key(stmt: &Statement) -> Option<(String, String)> {
    let Statement::CreateTable(t) = stmt else { return None };
    if t.query.is_some() || t.like.is_some() || has_key(t) {
        return None;
    }
    Some((crate::rules::last_ident(&t.name).to_ascii_lowercase(), t.name.to_string()))
}

fn has_key(t: &CreateTable) -> bool {
    let in_column = t.columns.iter().any(|c| c.options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_))));
    in_column || t.constraints.iter().any(|c| matches!(c, TableConstraint::PrimaryKey(_)))
}

/// The table (lower-cased) an ALTER TABLE gives a primary key: ADD [CONSTRAINT …] PRIMARY KEY, or a column
/// added, modified or changed with PRIMARY KEY.
pub(crate) fn adds_primary_key(stmt: &Statement) -> Option<String> {
    let Statement::AlterTable(a) = stmt else { return None };
    let column_key = |options: &[sqlparser::ast::ColumnOptionDef]| options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
    let adds = a.operations.iter().any(|o| match o {
        AlterTableOperation::AddConstraint { constraint: TableConstraint::PrimaryKey(_), .. } => true,
        AlterTableOperation::AddColumn { column_def, .. } => column_key(&column_def.options),
        AlterTableOperation::ModifyColumn { options, .. } | AlterTableOperation::ChangeColumn { options, .. } => {
            options.iter().any(|o| matches!(o, ColumnOption::PrimaryKey(_)))
        }
        _ => false,
    });
    adds.then(|| crate::rules::last_ident(&a.name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fires(sql: &str, d: SqlDialect) -> usize {
        crate::review(sql, d).findings.iter().filter(|f| f.rule == "require-primary-key").count()
    }

    #[test]
    fn a_key_added_later_in_the_file_counts() {
        let pg_dump = "CREATE TABLE public.actor (actor_id integer NOT NULL, name text);\n\
                       ALTER TABLE ONLY public.actor ADD CONSTRAINT actor_pkey PRIMARY KEY (actor_id);";
        assert_eq!(fires(pg_dump, SqlDialect::Postgres), 0);
        assert_eq!(fires("CREATE TABLE t (id INT NOT NULL);\nALTER TABLE t ADD PRIMARY KEY (id);", SqlDialect::MySql), 0);
        assert_eq!(fires("CREATE TABLE t (id INT NOT NULL);\nALTER TABLE t MODIFY id INT NOT NULL PRIMARY KEY;", SqlDialect::MySql), 0);
        assert_eq!(fires("CREATE TABLE t (id INT NOT NULL);\nALTER TABLE other ADD PRIMARY KEY (id);", SqlDialect::MySql), 1, "another table's key");
        assert_eq!(
            fires("ALTER TABLE t ADD PRIMARY KEY (id);\nCREATE TABLE t (id INT NOT NULL);", SqlDialect::MySql),
            1,
            "a key before the table is not its key"
        );
        assert_eq!(fires("CREATE TABLE t (id INT);", SqlDialect::Postgres), 1);
    }

    /// pagila's partitions: each is created bare and attached to a parent that has the key.
    #[test]
    fn a_partition_attached_to_a_keyed_parent_has_its_key() {
        let parent = "CREATE TABLE public.payment (id int NOT NULL, at date NOT NULL, PRIMARY KEY (at, id)) PARTITION BY RANGE (at);\n";
        let part = "CREATE TABLE public.payment_p1 (id int NOT NULL, at date NOT NULL);\n";
        let attach = "ALTER TABLE ONLY public.payment ATTACH PARTITION public.payment_p1 FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');";
        assert_eq!(fires(&format!("{parent}{part}{attach}"), SqlDialect::Postgres), 0);
        let bare_parent = "CREATE TABLE public.payment (id int NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);\n";
        assert_eq!(fires(&format!("{bare_parent}{part}{attach}"), SqlDialect::Postgres), 2, "a keyless parent gives no key");
        assert_eq!(fires(&format!("{parent}{part}"), SqlDialect::Postgres), 1, "never attached");
    }
}
