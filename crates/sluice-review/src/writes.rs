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

/// An UPDATE or DELETE that batched mode runs in primary-key ranges: the same statement with
/// `AND key > lo AND key <= hi` added to its WHERE clause, one range per chunk.
#[derive(Debug, Clone)]
pub struct Batchable {
    statement: Statement,
    dialect: SqlDialect,
    pub write: Write,
}

fn parse_one(sql: &str, dialect: SqlDialect) -> Result<Statement, String> {
    let mut parsed = match dialect {
        SqlDialect::MySql => Parser::parse_sql(&MySqlDialect {}, sql),
        SqlDialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
    }
    .map_err(|e| format!("it does not parse: {e}"))?;
    if parsed.len() != 1 {
        return Err("it is not a single statement".into());
    }
    Ok(parsed.remove(0))
}

/// The statement as batched mode runs it, or why it cannot be split (not an UPDATE or DELETE of one
/// table, or one with its own LIMIT or ORDER BY, whose rows depend on the order they are visited in).
pub fn batchable(sql: &str, dialect: SqlDialect) -> Result<Batchable, String> {
    let write = written_table(sql, dialect)?;
    if write.op == WriteOp::Insert {
        return Err("batched mode splits UPDATE and DELETE statements; an INSERT is one statement".into());
    }
    let statement = parse_one(sql, dialect)?;
    let (limit, order) = match &statement {
        Statement::Update(u) => (u.limit.is_some(), !u.order_by.is_empty()),
        Statement::Delete(d) => (d.limit.is_some(), !d.order_by.is_empty()),
        _ => (false, false),
    };
    if limit || order {
        return Err("it has its own LIMIT or ORDER BY, which chunks by key would change".into());
    }
    Ok(Batchable { statement, dialect, write })
}

impl Batchable {
    /// The statement limited to `lo < key <= hi` (either bound may be open).
    pub fn chunk(&self, key: &str, lo: Option<i64>, hi: Option<i64>) -> Result<String, String> {
        let col = match self.dialect {
            SqlDialect::MySql => format!("`{}`.`{}`", self.write.alias.replace('`', "``"), key.replace('`', "``")),
            SqlDialect::Postgres => format!("\"{}\".\"{}\"", self.write.alias.replace('"', "\"\""), key.replace('"', "\"\"")),
        };
        let mut bounds = Vec::new();
        if let Some(lo) = lo {
            bounds.push(format!("{col} > {lo}"));
        }
        if let Some(hi) = hi {
            bounds.push(format!("{col} <= {hi}"));
        }
        if bounds.is_empty() {
            return Ok(self.statement.to_string());
        }
        let text = bounds.join(" AND ");
        let range = match self.dialect {
            SqlDialect::MySql => Parser::new(&MySqlDialect {}).try_with_sql(&text).and_then(|mut p| p.parse_expr()),
            SqlDialect::Postgres => Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).and_then(|mut p| p.parse_expr()),
        }
        .map_err(|e| format!("cannot build the key range `{text}`: {e}"))?;
        let mut s = self.statement.clone();
        let selection = match &mut s {
            Statement::Update(u) => &mut u.selection,
            Statement::Delete(d) => &mut d.selection,
            _ => return Err("not an UPDATE or DELETE".into()),
        };
        *selection = Some(match selection.take() {
            None => range,
            Some(w) => sqlparser::ast::Expr::BinaryOp {
                left: Box::new(sqlparser::ast::Expr::Nested(Box::new(w))),
                op: sqlparser::ast::BinaryOperator::And,
                right: Box::new(range),
            },
        });
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn chunks_add_the_key_range_to_the_where_clause() {
        let b = batchable("UPDATE t SET v = v + 1 WHERE v < 10 OR v > 20", SqlDialect::MySql).unwrap();
        assert_eq!(b.chunk("id", Some(1000), Some(2000)).unwrap(), "UPDATE t SET v = v + 1 WHERE (v < 10 OR v > 20) AND `t`.`id` > 1000 AND `t`.`id` <= 2000");
        assert_eq!(b.chunk("id", None, Some(5)).unwrap(), "UPDATE t SET v = v + 1 WHERE (v < 10 OR v > 20) AND `t`.`id` <= 5");
        let b = batchable("DELETE FROM public.t AS x", SqlDialect::Postgres).unwrap();
        assert_eq!(b.chunk("id", Some(7), None).unwrap(), "DELETE FROM public.t AS x WHERE \"x\".\"id\" > 7");
        assert!(batchable("UPDATE t SET v = 1 ORDER BY id LIMIT 10", SqlDialect::MySql).unwrap_err().contains("LIMIT"));
        assert!(batchable("INSERT INTO t VALUES (1)", SqlDialect::MySql).unwrap_err().contains("INSERT"));
    }
}

/// How backup mode can undo one DDL statement: statements derived from it (ADD COLUMN → DROP COLUMN,
/// CREATE INDEX → DROP INDEX, CREATE TABLE/VIEW → DROP), or, where none can be derived, copies of the
/// tables it changes taken first (and put back by the rollback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlUndo {
    Inverse(Vec<String>),
    CopyTables(Vec<(Option<String>, String)>),
}

fn obj(name: &ObjectName) -> String {
    name.to_string()
}

fn constraint_drop(c: &sqlparser::ast::TableConstraint, dialect: SqlDialect) -> Option<String> {
    use sqlparser::ast::TableConstraint as T;
    let name = |n: &Option<sqlparser::ast::Ident>| n.as_ref().map(|i| i.to_string());
    match (c, dialect) {
        (T::Index(i), SqlDialect::MySql) => name(&i.name).map(|n| format!("DROP INDEX {n}")),
        (T::Unique(u), SqlDialect::MySql) => name(&u.name).or(name(&u.index_name)).map(|n| format!("DROP INDEX {n}")),
        (T::ForeignKey(f), SqlDialect::MySql) => name(&f.name).map(|n| format!("DROP FOREIGN KEY {n}")),
        (T::Check(k), SqlDialect::MySql) => name(&k.name).map(|n| format!("DROP CONSTRAINT {n}")),
        (T::Unique(u), SqlDialect::Postgres) => name(&u.name).map(|n| format!("DROP CONSTRAINT {n}")),
        (T::ForeignKey(f), SqlDialect::Postgres) => name(&f.name).map(|n| format!("DROP CONSTRAINT {n}")),
        (T::Check(k), SqlDialect::Postgres) => name(&k.name).map(|n| format!("DROP CONSTRAINT {n}")),
        _ => None,
    }
}

/// The undo of one DDL statement, or why backup mode cannot undo it.
pub fn ddl_undo(sql: &str, dialect: SqlDialect) -> Result<DdlUndo, String> {
    use sqlparser::ast::{AlterTableOperation, ObjectType};
    let statement = parse_one(sql, dialect)?;
    let table_of = |n: &ObjectName| split_name(n);
    Ok(match &statement {
        Statement::CreateTable(ct) if !ct.if_not_exists => DdlUndo::Inverse(vec![format!("DROP TABLE {}", obj(&ct.name))]),
        Statement::CreateView(v) if !v.or_replace => DdlUndo::Inverse(vec![format!("DROP VIEW {}", obj(&v.name))]),
        Statement::CreateIndex(ci) if !ci.if_not_exists && !ci.concurrently => {
            let name = ci.name.as_ref().ok_or("CREATE INDEX without a name: name it, so it can be dropped again")?;
            DdlUndo::Inverse(vec![match dialect {
                SqlDialect::MySql => format!("DROP INDEX {} ON {}", obj(name), obj(&ci.table_name)),
                SqlDialect::Postgres => match (table_of(&ci.table_name)?.0, ident_parts(name).map(|p| p.len())) {
                    // IF EXISTS: a table put back from a copy has the index under a generated name.
                    (Some(schema), Some(1)) => format!("DROP INDEX IF EXISTS {schema}.{}", obj(name)),
                    _ => format!("DROP INDEX IF EXISTS {}", obj(name)),
                },
            }])
        }
        Statement::AlterTable(at) => {
            let mut undo = Vec::new();
            for op in &at.operations {
                let step = match op {
                    AlterTableOperation::AddColumn { if_not_exists: false, column_def, .. } => Some(format!("DROP COLUMN {}", column_def.name)),
                    AlterTableOperation::AddConstraint { constraint, .. } => constraint_drop(constraint, dialect),
                    _ => None,
                };
                match step {
                    Some(s) => undo.push(s),
                    None => return Ok(DdlUndo::CopyTables(vec![table_of(&at.name)?])),
                }
            }
            undo.reverse();
            DdlUndo::Inverse(vec![format!("ALTER TABLE {} {}", obj(&at.name), undo.join(", "))])
        }
        Statement::Drop { object_type: ObjectType::Table, names, .. } => DdlUndo::CopyTables(names.iter().map(table_of).collect::<Result<_, _>>()?),
        Statement::Truncate(t) => DdlUndo::CopyTables(t.table_names.iter().map(|n| table_of(&n.name)).collect::<Result<_, _>>()?),
        Statement::CreateTable(_) | Statement::CreateView(_) | Statement::CreateIndex(_) => {
            return Err(
                "with IF NOT EXISTS, OR REPLACE or CONCURRENTLY, what it changes is known only when it runs, so it cannot be undone; drop that clause".into()
            );
        }
        other => {
            let word = other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_ascii_uppercase();
            return Err(format!("{word} has no derived undo and no table to copy first"));
        }
    })
}

#[cfg(test)]
mod ddl_tests {
    use super::*;

    #[test]
    fn ddl_has_an_inverse_or_a_table_to_copy() {
        let inv = |s: &str, d| match ddl_undo(s, d).unwrap() {
            DdlUndo::Inverse(v) => v,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(inv("ALTER TABLE t ADD COLUMN c INT, ADD INDEX i_c (c)", SqlDialect::MySql), ["ALTER TABLE t DROP INDEX i_c, DROP COLUMN c"]);
        assert_eq!(inv("CREATE INDEX i ON shop.t (a)", SqlDialect::MySql), ["DROP INDEX i ON shop.t"]);
        assert_eq!(inv("CREATE INDEX i ON app.t (a)", SqlDialect::Postgres), ["DROP INDEX IF EXISTS app.i"]);
        assert_eq!(inv("CREATE TABLE x (id INT PRIMARY KEY)", SqlDialect::MySql), ["DROP TABLE x"]);
        assert_eq!(inv("ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES u (id)", SqlDialect::Postgres), ["ALTER TABLE t DROP CONSTRAINT t_fk"]);
        assert_eq!(ddl_undo("ALTER TABLE t DROP COLUMN c", SqlDialect::MySql).unwrap(), DdlUndo::CopyTables(vec![(None, "t".into())]));
        assert_eq!(ddl_undo("DROP TABLE s.a, b", SqlDialect::Postgres).unwrap(), DdlUndo::CopyTables(vec![(Some("s".into()), "a".into()), (None, "b".into())]));
        assert!(ddl_undo("CREATE INDEX CONCURRENTLY i ON t (a)", SqlDialect::Postgres).unwrap_err().contains("CONCURRENTLY"));
        assert!(ddl_undo("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", SqlDialect::Postgres).is_err());
    }
}

/// An `ALTER TABLE`'s table and its operations as text (what an online schema change tool takes), or
/// `None` for any other statement.
pub fn alter_parts(sql: &str, dialect: SqlDialect) -> Option<(Option<String>, String, String)> {
    let Statement::AlterTable(at) = parse_one(sql, dialect).ok()? else { return None };
    let (schema, table) = split_name(&at.name).ok()?;
    let ops = at.operations.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ");
    Some((schema, table, ops))
}

#[cfg(test)]
mod alter_tests {
    #[test]
    fn alter_parts_name_the_table_and_its_operations() {
        let p = super::alter_parts("ALTER TABLE shop.t ADD COLUMN c INT NULL, ADD INDEX i_c (c)", crate::SqlDialect::MySql).unwrap();
        assert_eq!(p, (Some("shop".into()), "t".into(), "ADD COLUMN c INT NULL, ADD INDEX i_c (c)".into()));
        assert!(super::alter_parts("UPDATE t SET a = 1", crate::SqlDialect::MySql).is_none());
    }
}
