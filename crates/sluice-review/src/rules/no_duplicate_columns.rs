use sqlparser::ast::{AssignmentTarget, Statement};
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoDuplicateColumns,
    RuleMeta {
        id: "no-duplicate-columns",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the same column is named twice (the statement fails, or the last assignment silently wins)",
        advice: "Name each column once",
        bad: "UPDATE orders SET status = 'a', status = 'b' WHERE id = 1;",
        good: "UPDATE orders SET status = 'a' WHERE id = 1;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let names: Vec<String> = match ctx.stmt {
            Statement::Insert(i) => i.columns.iter().map(|c| c.to_string().to_ascii_lowercase()).collect(),
            Statement::Update(u) => u
                .assignments
                .iter()
                .flat_map(|a| match &a.target {
                    AssignmentTarget::ColumnName(n) => vec![n],
                    AssignmentTarget::Tuple(v) => v.iter().collect(),
                })
                .map(|n| n.to_string().to_ascii_lowercase())
                .collect(),
            Statement::CreateTable(t) => t.columns.iter().map(|c| c.name.value.to_ascii_lowercase()).collect(),
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter_map(|o| match o {
                    sqlparser::ast::AlterTableOperation::AddColumn { column_def, .. } => Some(column_def.name.value.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            _ => return vec![],
        };
        let mut seen = std::collections::HashSet::new();
        let mut twice = std::collections::BTreeSet::new();
        for n in names {
            if !seen.insert(n.clone()) {
                twice.insert(n);
            }
        }
        twice.into_iter().map(|n| (None, Some(n))).collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-duplicate-columns").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-duplicate-columns").count()
    }

    #[test]
    fn insert_update_and_create_forms() {
        assert_eq!(fired("INSERT INTO t (a, a) VALUES (1, 2);", SqlDialect::Postgres), 1);
        assert_eq!(fired("CREATE TABLE t (a int, a text);", SqlDialect::Postgres), 1);
        assert_eq!(fired("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = 1, t2.a = 2 WHERE t1.id = 3;", SqlDialect::MySql), 0, "two tables' columns");
        assert_eq!(fired("INSERT INTO t (a, b) VALUES ('a, a', 1); -- (a, a)", SqlDialect::MySql), 0);
    }
}
