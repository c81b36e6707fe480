use sqlparser::ast::{AlterTableOperation, Statement};

use crate::rule::ident_at;
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoChangeColumnOrder,
    RuleMeta {
        id: "no-change-column-order",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "MODIFY or CHANGE moves the column (FIRST / AFTER): MySQL copies the whole table to reorder it",
        advice: "Leave columns where they are; order them in queries",
        bad: "ALTER TABLE orders MODIFY note TEXT AFTER id;",
        good: "ALTER TABLE orders MODIFY note TEXT;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        if ctx.is_new_table(&a.name) {
            return vec![];
        }
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::ModifyColumn { col_name, column_position: Some(p), .. } | AlterTableOperation::ChangeColumn { old_name: col_name, column_position: Some(p), .. } => {
                    Some((ident_at(col_name), Some(format!("{col_name} {p}"))))
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
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-change-column-order").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-change-column-order").count()
    }

    #[test]
    fn only_moves() {
        assert_eq!(fired("ALTER TABLE t CHANGE a b INT FIRST;", SqlDialect::MySql), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY `after` INT COMMENT 'AFTER id';", SqlDialect::MySql), 0);
    }
}
