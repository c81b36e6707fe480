//! MySQL/MariaDB foreign keys whose actions never reach the binlog: InnoDB deletes (or nulls, or updates) the
//! child rows of `ON DELETE CASCADE` / `SET NULL` / `ON UPDATE CASCADE` itself, and writes no row event for
//! them. A target that has the child table but not the same constraint would keep those rows forever.
//!
//! So when the sink opens, it reads the source's foreign keys with such an action and, for every one whose
//! child table this sink maps, requires the target to do the same: a foreign key from the child's target
//! table to the parent's target table with the same rule. Otherwise the sink refuses to start, naming the
//! constraint and the two ways forward (add the constraint at the target, or stop mapping the child table).

use mysql_async::prelude::Queryable;
use sluice_engines::ConnectSpec;
use sluice_pipeline::SinkError;

use super::convert::Dialect;
use super::mapping::Mapping;
use super::target::{TableName, Target, my_error, pg_error};

/// A source foreign key with an action the binlog does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceForeignKey {
    pub schema: String,
    pub name: String,
    pub child: String,
    pub parent: String,
    pub columns: String,
    pub referenced: String,
    pub delete_rule: String,
    pub update_rule: String,
}

/// schema, name, child, parent, columns, referenced columns, delete rule, update rule.
type FkRow = (String, String, String, String, String, String, String, String);

fn silent(rule: &str) -> bool {
    matches!(rule, "CASCADE" | "SET NULL" | "SET DEFAULT")
}

/// The source's foreign keys (within one database, as InnoDB requires for these actions to matter here)
/// whose delete or update rule changes child rows.
pub(crate) async fn source_foreign_keys(spec: &ConnectSpec) -> Result<Vec<SourceForeignKey>, SinkError> {
    let unreachable = |m: String| SinkError::retryable(format!("cannot read the source's foreign keys: {m}"));
    sluice_engines::connect::resolve(spec).await.map_err(|f| unreachable(f.message))?;
    let mut c = mysql_async::Conn::new(sluice_engines::connect::mysql_opts(spec))
        .await
        .map_err(|e| unreachable(sluice_engines::connect::mysql_failure(&e, spec).message))?;
    let rows: Vec<FkRow> = c
        .query(
            "SELECT rc.CONSTRAINT_SCHEMA, rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, \
                    GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION), GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION), \
                    rc.DELETE_RULE, rc.UPDATE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
             JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME \
             WHERE rc.DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') OR rc.UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') \
             GROUP BY rc.CONSTRAINT_SCHEMA, rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE, rc.UPDATE_RULE",
        )
        .await
        .map_err(|e| my_error(e).into_sink("cannot read the source's foreign keys"))?;
    let _ = c.disconnect().await;
    Ok(rows
        .into_iter()
        .map(|(schema, name, child, parent, columns, referenced, delete_rule, update_rule)| SourceForeignKey {
            schema,
            name,
            child,
            parent,
            columns,
            referenced,
            delete_rule,
            update_rule,
        })
        .collect())
}

/// The delete and update rules of the target's foreign keys from `child` to `parent`.
async fn target_rules(t: &mut Target, child: &TableName, parent: &TableName) -> Result<Vec<(String, String)>, SinkError> {
    match t {
        Target::Pg(c) => {
            let rows = c
                .query(
                    "SELECT rc.delete_rule, rc.update_rule FROM information_schema.table_constraints tc \
                     JOIN information_schema.referential_constraints rc ON rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name \
                     JOIN information_schema.table_constraints pk ON pk.constraint_schema = rc.unique_constraint_schema AND pk.constraint_name = rc.unique_constraint_name \
                     WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = $1 AND tc.table_name = $2 AND pk.table_schema = $3 AND pk.table_name = $4",
                    &[&child.schema, &child.table, &parent.schema, &parent.table],
                )
                .await
                .map_err(|e| pg_error(e).into_sink("cannot read the target's foreign keys"))?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect())
        }
        Target::My(c) => c
            .exec(
                "SELECT DELETE_RULE, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?",
                (&child.schema, &child.table, &parent.schema, &parent.table),
            )
            .await
            .map_err(|e| my_error(e).into_sink("cannot read the target's foreign keys")),
    }
}

fn mapped<'a>(mappings: &'a [std::sync::Arc<Mapping>], schema: &str, table: &str) -> Option<&'a Mapping> {
    mappings.iter().find(|m| m.matches(schema, table)).map(|m| m.as_ref())
}

/// Refuses (permanently) when a source foreign key's silent action would leave the target's child rows
/// behind; `at` names the sink (`sinks.NAME`).
pub(crate) async fn check(
    at: &str,
    fks: &[SourceForeignKey],
    mappings: &[std::sync::Arc<Mapping>],
    t: &mut Target,
    default_schema: &str,
) -> Result<(), SinkError> {
    for fk in fks {
        let Some(child_map) = mapped(mappings, &fk.schema, &fk.child) else { continue };
        let constraint = format!(
            "`{}.{}` ({}.{}({}) → {}({}) ON DELETE {} ON UPDATE {})",
            fk.schema, fk.name, fk.schema, fk.child, fk.columns, fk.parent, fk.referenced, fk.delete_rule, fk.update_rule
        );
        let child = child_map.target_name(&fk.schema, &fk.child, default_schema);
        let Some(parent_map) = mapped(mappings, &fk.schema, &fk.parent) else {
            return Err(SinkError::permanent(format!(
                "{at}.tables: the source constraint {constraint} changes rows of `{}.{}` without a binlog event, and this sink maps that table but not its parent `{}.{}`, so the target's copies would be left behind; map the parent too (with the same constraint at the target), or stop mapping `{}.{}`",
                fk.schema, fk.child, fk.schema, fk.parent, fk.schema, fk.child
            )));
        };
        let parent = parent_map.target_name(&fk.schema, &fk.parent, default_schema);
        let rules = target_rules(t, &child, &parent).await?;
        let same = |source: &str, target: &str| !silent(source) || source == target;
        if !rules.iter().any(|(d, u)| same(&fk.delete_rule, d) && same(&fk.update_rule, u)) {
            let dialect = t.dialect();
            let wanted = format!(
                "ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
                child.quoted(dialect),
                fk.columns,
                parent.quoted(dialect),
                fk.referenced,
                fk.delete_rule,
                if dialect == Dialect::Postgres && fk.update_rule == "RESTRICT" { "NO ACTION" } else { &fk.update_rule }
            );
            return Err(SinkError::permanent(format!(
                "{at}.tables: the source constraint {constraint} changes rows of `{}.{}` without a binlog event, and the target table {child} has no foreign key to {parent} doing the same, so those rows would be left behind at the target; add it (`{wanted}`, columns renamed as mapped), or stop mapping `{}.{}`",
                fk.schema, fk.child, fk.schema, fk.child
            )));
        }
    }
    Ok(())
}
