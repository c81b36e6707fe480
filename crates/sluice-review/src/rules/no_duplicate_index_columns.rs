use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// A column as the server names it: a quoted name as written, an unquoted one case-folded.
fn key(e: &sqlparser::ast::Expr) -> String {
    match e {
        sqlparser::ast::Expr::Identifier(i) if i.quote_style.is_some() => i.value.clone(),
        sqlparser::ast::Expr::Identifier(i) => i.value.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

rule!(
    NoDuplicateIndexColumns,
    RuleMeta {
        id: "no-duplicate-index-columns",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Error,
        summary: "an index lists the same column twice",
        advice: "List each column once",
        bad: "CREATE INDEX idx_a ON t (a, a);",
        good: "CREATE INDEX idx_a_b ON t (a, b);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let lists: Vec<Vec<String>> = match ctx.stmt {
            Statement::CreateTable(t) => t
                .constraints
                .iter()
                .filter_map(|c| match c {
                    TableConstraint::Index(i) => Some(&i.columns),
                    TableConstraint::Unique(u) => Some(&u.columns),
                    TableConstraint::PrimaryKey(p) => Some(&p.columns),
                    _ => None,
                })
                .map(|cols| cols.iter().map(|c| key(&c.column.expr)).collect())
                .collect(),
            Statement::CreateIndex(ci) => vec![ci.columns.iter().map(|c| key(&c.column.expr)).collect()],
            Statement::AlterTable(a) => a
                .operations
                .iter()
                .filter_map(|o| match o {
                    AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                        TableConstraint::Index(i) => Some(&i.columns),
                        TableConstraint::Unique(u) => Some(&u.columns),
                        TableConstraint::PrimaryKey(p) => Some(&p.columns),
                        _ => None,
                    },
                    _ => None,
                })
                .map(|cols| cols.iter().map(|c| key(&c.column.expr)).collect())
                .collect(),
            _ => return vec![],
        };
        let mut out = Vec::new();
        for cols in lists {
            let mut seen = std::collections::HashSet::new();
            if let Some(twice) = cols.iter().find(|c| !seen.insert(c.as_str())) {
                out.push((None, Some(twice.clone())));
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-duplicate-index-columns").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-duplicate-index-columns").count()
    }

    #[test]
    fn create_table_and_alter_forms() {
        assert_eq!(fired("CREATE TABLE t (a int, INDEX idx_a (a, a));", SqlDialect::MySql), 1);
        assert_eq!(fired("ALTER TABLE t ADD UNIQUE uk_a (a, a);", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE INDEX idx_a ON t (a, \"a\");", SqlDialect::Postgres), 1, "a quoted name is the same column");
        assert_eq!(fired("CREATE INDEX idx_a ON t (a, \"A\");", SqlDialect::Postgres), 0, "\"A\" is another column on PostgreSQL");
        assert_eq!(fired("CREATE INDEX idx_a ON t (a, b); -- (a, a)", SqlDialect::Postgres), 0);
    }
}
