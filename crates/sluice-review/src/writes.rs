//! What a DML statement writes: its operation, the one table it changes (with the alias it is known by)
//! and the columns an UPDATE sets. Backup-then-execute uses it to check each target table up front (primary
//! key, triggers, cascading foreign keys) and, on PostgreSQL, to capture the changed rows in the same
//! statement. Anything it cannot pin to one table is an error that names why, so backup mode refuses it
//! rather than guessing.

use sqlparser::ast::{AssignmentTarget, FromTable, ObjectName, ObjectNamePart, OnInsert, SelectItem, Statement, TableFactor, TableObject, TableWithJoins};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

use crate::SqlDialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub op: WriteOp,
    /// The schema (PostgreSQL) or database (MySQL) when the statement names one.
    pub schema: Option<String>,
    pub table: String,
    /// How the statement refers to the table (its alias, else its name).
    pub alias: String,
    /// UPDATE: the columns it sets (unqualified, as written).
    pub set_columns: Vec<String>,
}

fn ident_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .collect()
}

fn split_name(name: &ObjectName) -> Result<(Option<String>, String), String> {
    let parts = ident_parts(name).ok_or_else(|| format!("`{name}` is not a plain table name"))?;
    match parts.as_slice() {
        [t] => Ok((None, t.clone())),
        [s, t] => Ok((Some(s.clone()), t.clone())),
        _ => Err(format!("`{name}` is not a table name of the form [schema.]table")),
    }
}

fn single_table(t: &TableWithJoins) -> Result<(Option<String>, String, String), String> {
    if !t.joins.is_empty() {
        return Err("it changes rows through a join (one table at a time is needed to keep its rows)".into());
    }
    match &t.relation {
        TableFactor::Table { name, alias, args: None, .. } => {
            let (schema, table) = split_name(name)?;
            let alias = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| table.clone());
            Ok((schema, table, alias))
        }
        other => Err(format!("it changes `{other}`, not a table")),
    }
}

fn column_name(n: &ObjectName) -> String {
    ident_parts(n).and_then(|p| p.last().cloned()).unwrap_or_else(|| n.to_string())
}

fn no_returning(r: &Option<Vec<SelectItem>>) -> Result<(), String> {
    match r {
        Some(_) => Err("it has its own RETURNING clause".into()),
        None => Ok(()),
    }
}

/// The table one INSERT, UPDATE or DELETE writes, or why that cannot be said.
pub fn written_table(sql: &str, dialect: SqlDialect) -> Result<Write, String> {
    let parsed = match dialect {
        SqlDialect::MySql => Parser::parse_sql(&MySqlDialect {}, sql),
        SqlDialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
    }
    .map_err(|e| format!("it does not parse: {e}"))?;
    let [statement] = parsed.as_slice() else { return Err("it is not a single statement".into()) };
    match statement {
        Statement::Update(u) => {
            if u.from.is_some() {
                return Err("UPDATE … FROM changes rows through a join (one table at a time is needed to keep its rows)".into());
            }
            no_returning(&u.returning)?;
            let (schema, table, alias) = single_table(&u.table)?;
            let mut set_columns = Vec::new();
            for a in &u.assignments {
                match &a.target {
                    AssignmentTarget::ColumnName(n) => set_columns.push(column_name(n)),
                    AssignmentTarget::Tuple(ns) => set_columns.extend(ns.iter().map(column_name)),
                }
            }
            Ok(Write { op: WriteOp::Update, schema, table, alias, set_columns })
        }
        Statement::Delete(d) => {
            if d.using.is_some() || d.tables.len() > 1 {
                return Err("DELETE … USING or a multi-table DELETE changes rows through a join (one table at a time is needed to keep its rows)".into());
            }
            no_returning(&d.returning)?;
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            let [t] = from.as_slice() else { return Err("it deletes from several tables".into()) };
            let (schema, table, alias) = single_table(t)?;
            Ok(Write { op: WriteOp::Delete, schema, table, alias, set_columns: Vec::new() })
        }
        Statement::Insert(i) => {
            no_returning(&i.returning)?;
            if i.replace_into {
                return Err("REPLACE deletes and inserts rows it does not name; write INSERT … ON DUPLICATE KEY UPDATE".into());
            }
            if matches!(i.on, Some(OnInsert::OnConflict(_))) && dialect == SqlDialect::Postgres {
                return Err("INSERT … ON CONFLICT mixes inserted and updated rows, which cannot be told apart afterwards".into());
            }
            let TableObject::TableName(name) = &i.table else { return Err("it inserts into a table function".into()) };
            let (schema, table) = split_name(name)?;
            let alias = i.table_alias.as_ref().map(|a| a.alias.value.clone()).unwrap_or_else(|| table.clone());
            Ok(Write { op: WriteOp::Insert, schema, table, alias, set_columns: Vec::new() })
        }
        other => {
            let word = other.to_string().split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            Err(format!("it is a {word} statement, not INSERT, UPDATE or DELETE"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_table_each_statement_writes() {
        let w = written_table("UPDATE shop.orders o SET o.state = 'x', total = 2 WHERE id < 10", SqlDialect::MySql).unwrap();
        assert_eq!((w.op, w.schema.as_deref(), w.table.as_str(), w.alias.as_str()), (WriteOp::Update, Some("shop"), "orders", "o"));
        assert_eq!(w.set_columns, ["state", "total"]);
        let w = written_table("DELETE FROM accounts WHERE id = 3", SqlDialect::Postgres).unwrap();
        assert_eq!((w.op, w.schema, w.alias.as_str()), (WriteOp::Delete, None, "accounts"));
        let w = written_table("INSERT INTO public.t (a) VALUES (1), (2)", SqlDialect::Postgres).unwrap();
        assert_eq!((w.op, w.schema.as_deref(), w.table.as_str()), (WriteOp::Insert, Some("public"), "t"));
        assert!(written_table("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = 2", SqlDialect::MySql).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_pin_to_one_table() {
        for (sql, d, why) in [
            ("UPDATE a JOIN b ON a.id = b.id SET a.x = 1", SqlDialect::MySql, "join"),
            ("UPDATE a SET x = b.x FROM b WHERE a.id = b.id", SqlDialect::Postgres, "FROM"),
            ("DELETE a FROM a JOIN b ON a.id = b.id", SqlDialect::MySql, "join"),
            ("DELETE FROM a USING b WHERE a.id = b.id", SqlDialect::Postgres, "USING"),
            ("UPDATE t SET a = 1 RETURNING *", SqlDialect::Postgres, "RETURNING"),
            ("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", SqlDialect::Postgres, "ON CONFLICT"),
            ("REPLACE INTO t VALUES (1)", SqlDialect::MySql, "REPLACE"),
            ("ALTER TABLE t ADD COLUMN c INT", SqlDialect::MySql, "ALTER"),
            ("UPDATE t SET", SqlDialect::MySql, "parse"),
        ] {
            let e = written_table(sql, d).unwrap_err();
            assert!(e.contains(why), "{sql}: {e}");
        }
    }
}
