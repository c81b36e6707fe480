//! The columns a statement introduces or retypes, whatever the statement's form: CREATE TABLE's column
//! list, ALTER TABLE's ADD COLUMN, MySQL's MODIFY and CHANGE, and PostgreSQL's ALTER COLUMN … TYPE. Type and
//! column-option rules read this so that a migration's `ALTER TABLE … ADD COLUMN c char` is held to the same
//! rule as a `CREATE TABLE`.

use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, ColumnOption, DataType, Ident, ObjectName, Statement};

/// How the statement touches the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// In a CREATE TABLE: the table is new.
    Create,
    /// ALTER TABLE … ADD COLUMN.
    Add,
    /// MODIFY / CHANGE (MySQL: the whole definition is restated).
    Redefine,
    /// ALTER COLUMN … [SET DATA] TYPE (PostgreSQL: only the type; no options).
    Retype,
}

pub(crate) struct Column<'a> {
    pub table: &'a ObjectName,
    pub name: &'a Ident,
    pub data_type: &'a DataType,
    pub options: Vec<&'a ColumnOption>,
    pub how: How,
}

impl Column<'_> {
    pub fn has(&self, f: impl Fn(&ColumnOption) -> bool) -> bool {
        self.options.iter().any(|o| f(o))
    }

    pub fn is_primary_key(&self) -> bool {
        self.has(|o| matches!(o, ColumnOption::PrimaryKey(_)))
    }

    pub fn default(&self) -> Option<&sqlparser::ast::Expr> {
        self.options.iter().find_map(|o| match o {
            ColumnOption::Default(e) => Some(e),
            _ => None,
        })
    }
}

/// CHAR or VARCHAR, for the length rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text {
    Fixed,
    Varying,
}

/// The CHAR (or VARCHAR) columns a statement declares longer than `max`, as findings at their names.
pub(crate) fn longer_than(stmt: &Statement, kind: Text, max: u64) -> Vec<(crate::rule::At, Option<String>)> {
    use sqlparser::ast::CharacterLength;
    columns(stmt)
        .into_iter()
        .filter_map(|c| {
            let length = match (kind, c.data_type) {
                (Text::Fixed, DataType::Char(Some(l)) | DataType::Character(Some(l))) => l,
                (Text::Varying, DataType::Varchar(Some(l)) | DataType::CharacterVarying(Some(l))) => l,
                _ => return None,
            };
            match length {
                CharacterLength::IntegerLength { length, .. } if *length > max => {
                    Some((crate::rule::ident_at(c.name), Some(format!("{} {} > {max}", c.name, c.data_type))))
                }
                _ => None,
            }
        })
        .collect()
}

pub(crate) fn columns(stmt: &Statement) -> Vec<Column<'_>> {
    let mut out = Vec::new();
    match stmt {
        Statement::CreateTable(t) => {
            for c in &t.columns {
                out.push(Column {
                    table: &t.name,
                    name: &c.name,
                    data_type: &c.data_type,
                    options: c.options.iter().map(|o| &o.option).collect(),
                    how: How::Create,
                });
            }
        }
        Statement::AlterTable(a) => {
            for op in &a.operations {
                match op {
                    AlterTableOperation::AddColumn { column_def: c, .. } => out.push(Column {
                        table: &a.name,
                        name: &c.name,
                        data_type: &c.data_type,
                        options: c.options.iter().map(|o| &o.option).collect(),
                        how: How::Add,
                    }),
                    AlterTableOperation::ModifyColumn { col_name, data_type, options, .. } => {
                        out.push(Column { table: &a.name, name: col_name, data_type, options: options.iter().collect(), how: How::Redefine })
                    }
                    AlterTableOperation::ChangeColumn { new_name, data_type, options, .. } => {
                        out.push(Column { table: &a.name, name: new_name, data_type, options: options.iter().collect(), how: How::Redefine })
                    }
                    AlterTableOperation::AlterColumn { column_name, op: AlterColumnOperation::SetDataType { data_type, .. } } => {
                        out.push(Column { table: &a.name, name: column_name, data_type, options: Vec::new(), how: How::Retype })
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::SqlDialect::{self, MySql, Postgres};

    /// Each column rule holds ALTER TABLE's ADD / MODIFY / CHANGE / ALTER COLUMN TYPE to what it holds CREATE
    /// TABLE to (the issue: migrations introduce types with ALTER).
    #[test]
    fn column_rules_apply_to_the_alter_forms() {
        let cases: &[(&str, SqlDialect, &str)] = &[
            ("prefer-text-over-char", Postgres, "ALTER TABLE t ADD COLUMN c char;"),
            ("prefer-text-over-char", Postgres, "ALTER TABLE t ALTER COLUMN c TYPE char(2);"),
            ("prefer-timestamptz", Postgres, "ALTER TABLE app.users ALTER COLUMN created_ts TYPE timestamp;"),
            ("prefer-timestamptz", Postgres, "ALTER TABLE t ADD COLUMN at timestamp without time zone;"),
            ("prefer-text-over-varchar", Postgres, "ALTER TABLE t ADD COLUMN n varchar(20);"),
            ("prefer-jsonb-over-json", Postgres, "ALTER TABLE t ADD COLUMN doc json;"),
            ("prefer-identity-over-serial", Postgres, "ALTER TABLE t ADD COLUMN id serial;"),
            ("no-money-type", Postgres, "ALTER TABLE t ADD COLUMN price money;"),
            ("prefer-bigint-primary-key", Postgres, "ALTER TABLE a ADD COLUMN b integer PRIMARY KEY;"),
            ("no-volatile-default", Postgres, "ALTER TABLE core_recipe ADD COLUMN foo integer DEFAULT uuid();"),
            ("no-volatile-default", Postgres, "ALTER TABLE foo ADD COLUMN bar numeric GENERATED ALWAYS AS (bar + baz) STORED;"),
            ("add-foreign-key-not-valid", Postgres, "ALTER TABLE emails ADD COLUMN user_id INT REFERENCES users (id);"),
            ("add-unique-constraint-using-index", Postgres, "ALTER TABLE foo ADD COLUMN bar text UNIQUE;"),
            ("add-unique-constraint-using-index", Postgres, "ALTER TABLE a ADD COLUMN b SERIAL PRIMARY KEY;"),
            ("no-enum-columns", MySql, "ALTER TABLE t ADD COLUMN s ENUM('a', 'b');"),
            ("no-float-columns", MySql, "ALTER TABLE t MODIFY c FLOAT;"),
            ("no-float-for-money", MySql, "ALTER TABLE t CHANGE p price DOUBLE;"),
            ("no-blob-text-columns", MySql, "ALTER TABLE t ADD COLUMN body LONGTEXT;"),
            ("no-int-display-width", MySql, "ALTER TABLE t ADD COLUMN n INT(11);"),
            ("auto-increment-unsigned-bigint", MySql, "ALTER TABLE t ADD COLUMN id INT AUTO_INCREMENT PRIMARY KEY;"),
            ("require-column-comment", MySql, "ALTER TABLE t MODIFY c INT;"),
            ("no-reserved-word-names", MySql, "ALTER TABLE t ADD COLUMN `order` INT;"),
        ];
        for (rule, d, sql) in cases {
            let r = crate::review(sql, *d);
            assert!(r.findings.iter().any(|f| f.rule == *rule), "{rule} misses the ALTER form ({d:?}) {sql}: {:?}", r.findings);
        }
    }
}
