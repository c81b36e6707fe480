//! The indexes (and keys) a statement gives a table, whatever its form: CREATE TABLE's constraints and inline
//! `PRIMARY KEY` / `UNIQUE` columns, CREATE INDEX, and ALTER TABLE's ADD INDEX / ADD CONSTRAINT / ADD COLUMN …
//! PRIMARY KEY. Index rules read this so that a migration's `ALTER TABLE … ADD INDEX` is held to the same
//! rule as an index inside CREATE TABLE, and the file rules collect it per table across statements.

use sqlparser::ast::{AlterTableOperation, ColumnOption, IndexColumn, ObjectName, Statement, TableConstraint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Primary,
    Unique,
    /// A plain (or full-text / spatial) index.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIndex {
    /// Lower-cased, unqualified.
    pub table: String,
    /// As written, when the statement names it.
    pub name: Option<String>,
    /// Lower-cased column names (or expressions) in index order.
    pub columns: Vec<String>,
    pub(crate) kind: IndexKind,
    /// Made by a CREATE [UNIQUE] INDEX statement (rather than inside a table definition).
    pub standalone: bool,
}

fn column_list(c: &[IndexColumn]) -> Vec<String> {
    c.iter().map(|ic| ic.column.expr.to_string().trim_matches('`').trim_matches('"').to_ascii_lowercase()).collect()
}

/// The index a table constraint makes, if it makes one.
fn from_constraint(table: &str, c: &TableConstraint) -> Option<NewIndex> {
    let (name, columns, kind) = match c {
        TableConstraint::PrimaryKey(p) => (p.name.as_ref().map(|n| n.value.clone()), column_list(&p.columns), IndexKind::Primary),
        TableConstraint::Unique(u) => (u.name.as_ref().or(u.index_name.as_ref()).map(|n| n.value.clone()), column_list(&u.columns), IndexKind::Unique),
        TableConstraint::Index(i) => (i.name.as_ref().map(|n| n.value.clone()), column_list(&i.columns), IndexKind::Plain),
        TableConstraint::FulltextOrSpatial(f) => (f.opt_index_name.as_ref().map(|n| n.value.clone()), column_list(&f.columns), IndexKind::Plain),
        _ => return None,
    };
    (!columns.is_empty()).then(|| NewIndex { table: table.to_string(), name, columns, kind, standalone: false })
}

/// The key a column's inline `PRIMARY KEY` / `UNIQUE` makes.
fn from_column(table: &str, name: &sqlparser::ast::Ident, options: &[&ColumnOption]) -> Option<NewIndex> {
    let kind = options.iter().find_map(|o| match o {
        ColumnOption::PrimaryKey(_) => Some(IndexKind::Primary),
        ColumnOption::Unique(_) => Some(IndexKind::Unique),
        _ => None,
    })?;
    Some(NewIndex { table: table.to_string(), name: None, columns: vec![name.value.to_ascii_lowercase()], kind, standalone: false })
}

fn table_name(n: &ObjectName) -> String {
    crate::rules::last_ident(n).to_ascii_lowercase()
}

pub(crate) fn new_indexes(stmt: &Statement) -> Vec<NewIndex> {
    let mut out = Vec::new();
    match stmt {
        Statement::CreateTable(t) => {
            let table = table_name(&t.name);
            for c in &t.columns {
                let options: Vec<&ColumnOption> = c.options.iter().map(|o| &o.option).collect();
                out.extend(from_column(&table, &c.name, &options));
            }
            out.extend(t.constraints.iter().filter_map(|c| from_constraint(&table, c)));
        }
        Statement::CreateIndex(ci) => {
            let columns = column_list(&ci.columns);
            if !columns.is_empty() {
                out.push(NewIndex {
                    table: table_name(&ci.table_name),
                    name: ci.name.as_ref().map(crate::rules::last_ident),
                    columns,
                    kind: if ci.unique { IndexKind::Unique } else { IndexKind::Plain },
                    standalone: true,
                });
            }
        }
        Statement::AlterTable(a) => {
            let table = table_name(&a.name);
            for op in &a.operations {
                match op {
                    AlterTableOperation::AddConstraint { constraint, .. } => out.extend(from_constraint(&table, constraint)),
                    AlterTableOperation::AddColumn { column_def: c, .. } => {
                        let options: Vec<&ColumnOption> = c.options.iter().map(|o| &o.option).collect();
                        out.extend(from_column(&table, &c.name, &options));
                    }
                    AlterTableOperation::ModifyColumn { col_name, options, .. } | AlterTableOperation::ChangeColumn { new_name: col_name, options, .. } => {
                        out.extend(from_column(&table, col_name, &options.iter().collect::<Vec<_>>()));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

/// The foreign keys a statement adds: (lower-cased table, lower-cased columns).
pub(crate) fn new_foreign_keys(stmt: &Statement) -> Vec<(String, Vec<String>)> {
    let fk = |table: &str, c: &TableConstraint| match c {
        TableConstraint::ForeignKey(fk) => Some((table.to_string(), fk.columns.iter().map(|c| c.value.to_ascii_lowercase()).collect())),
        _ => None,
    };
    match stmt {
        Statement::CreateTable(t) => {
            let table = table_name(&t.name);
            let mut out: Vec<_> = t.constraints.iter().filter_map(|c| fk(&table, c)).collect();
            for c in &t.columns {
                if c.options.iter().any(|o| matches!(o.option, ColumnOption::ForeignKey(_))) {
                    out.push((table.clone(), vec![c.name.value.to_ascii_lowercase()]));
                }
            }
            out
        }
        Statement::AlterTable(a) => {
            let table = table_name(&a.name);
            let mut out = Vec::new();
            for op in &a.operations {
                match op {
                    AlterTableOperation::AddConstraint { constraint, .. } => out.extend(fk(&table, constraint)),
                    AlterTableOperation::AddColumn { column_def: c, .. } if c.options.iter().any(|o| matches!(o.option, ColumnOption::ForeignKey(_))) => {
                        out.push((table.clone(), vec![c.name.value.to_ascii_lowercase()]));
                    }
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Whether an index on `columns` makes one on `prefix` redundant (same leading columns, in order).
pub(crate) fn covers(columns: &[String], prefix: &[String]) -> bool {
    columns.len() >= prefix.len() && columns[..prefix.len()] == prefix[..]
}
