use sqlparser::ast::{AlterTableOperation, Statement};

use crate::rule::ident_at;
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Types compared as the server prints them (`int(11)` is `int`; case and spaces do not matter).
fn same_type(live: &str, new: &str) -> bool {
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase().replace(' ', "");
        for int in ["tinyint", "smallint", "mediumint", "bigint", "int"] {
            if let Some(rest) = s.strip_prefix(int)
                && rest.starts_with('(')
                && let Some(end) = rest.find(')')
            {
                return format!("{int}{}", &rest[end + 1..]);
            }
        }
        s
    };
    norm(live) == norm(new)
}

rule!(
    NoChangeColumnType,
    RuleMeta {
        id: "no-change-column-type",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "MODIFY or CHANGE gives the column another type: MySQL copies the whole table (ALGORITHM=COPY) and values may be cut",
        advice: "Add a new column, backfill it in batches, then switch readers (with --schema-from the rule only fires when the type really changes)",
        bad: "ALTER TABLE orders MODIFY status VARCHAR(64);",
        good: "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'new';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        if ctx.is_new_table(&a.name) {
            return vec![];
        }
        let live = ctx.settings.schema.as_ref().and_then(|s| s.tables.get(&crate::rules::last_ident(&a.name).to_ascii_lowercase()));
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::ModifyColumn { col_name, data_type, .. } | AlterTableOperation::ChangeColumn { old_name: col_name, data_type, .. } => {
                    let now = live.and_then(|t| t.column_types.get(&col_name.value.to_ascii_lowercase()));
                    match now {
                        Some(t) if same_type(t, &data_type.to_string()) => None,
                        Some(t) => Some((ident_at(col_name), Some(format!("{col_name}: {t} → {data_type}")))),
                        None => Some((ident_at(col_name), Some(format!("{col_name} → {data_type}; its current type is unknown without --schema-from")))),
                    }
                }
                _ => None,
            })
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-change-column-type").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-change-column-type").count()
    }

    #[test]
    fn new_tables_and_known_types() {
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY);\nALTER TABLE t MODIFY id BIGINT;", SqlDialect::MySql), 0, "a table new in the file");
        assert_eq!(fired("ALTER TABLE t CHANGE a b BIGINT;", SqlDialect::MySql), 1);
        assert!(super::same_type("int(11)", "INT"));
        assert!(!super::same_type("int(11)", "BIGINT"));
    }
}
