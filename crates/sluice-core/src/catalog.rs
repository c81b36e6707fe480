//! The catalog: what a live database says about its tables (columns, types, indexes, sizes, dependants),
//! and the EXPLAIN estimates of statements under review. Collected read-only by `sluice-engines`, read by
//! the review rules (and later metadata and execution); pure data here, so neither side depends on the
//! other.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableInfo {
    /// Column names, lower-cased.
    pub columns: Vec<String>,
    /// Each index as its column list in order, lower-cased (the primary key included).
    pub indexes: Vec<Vec<String>>,
    /// The server's row estimate (InnoDB TABLE_ROWS, pg_class.reltuples).
    pub rows: u64,
    /// Data plus indexes, in bytes.
    pub bytes: u64,
    /// Column → its type as the server shows it (`varchar(255)`, `bigint unsigned`, `character varying(40)`).
    pub column_types: BTreeMap<String, String>,
    /// Column → the objects that depend on it: foreign keys of other tables, views.
    pub referenced_by: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaInfo {
    /// By lower-cased table name (without schema).
    pub tables: BTreeMap<String, TableInfo>,
    /// EXPLAIN's row estimate of UPDATE/DELETE statements, by statement index.
    pub estimates: BTreeMap<usize, u64>,
}
