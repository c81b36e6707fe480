use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, Statement};

use crate::rule::ident_at;
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoDropNotNull,
    RuleMeta {
        id: "no-drop-not-null",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "dropping NOT NULL lets NULLs in that code written for the column does not expect",
        advice: "Keep the constraint; if the column must accept NULL, ship readers that handle it first",
        bad: "ALTER TABLE orders ALTER COLUMN note DROP NOT NULL;",
        good: "ALTER TABLE orders ALTER COLUMN note SET DEFAULT '';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AlterColumn { column_name, op: AlterColumnOperation::DropNotNull } => Some((ident_at(column_name), Some(column_name.value.clone()))),
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
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-drop-not-null").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-drop-not-null").count()
    }

    #[test]
    fn alter_form_and_words_elsewhere() {
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c DROP NOT NULL;", SqlDialect::Postgres), 1);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c SET NOT NULL; -- DROP NOT NULL\nSELECT 'DROP NOT NULL' AS \"drop not null\";", SqlDialect::Postgres), 0);
    }
}
