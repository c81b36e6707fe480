use sqlparser::ast::Statement;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoCreateView,
    RuleMeta {
        id: "no-create-view",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the change creates a view (the team keeps query logic out of the database)",
        advice: "Run the query from the application",
        bad: "CREATE VIEW paid_orders AS SELECT id FROM orders WHERE status = 'paid';",
        good: "CREATE TABLE paid_orders (id BIGINT PRIMARY KEY);",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateView(v) => vec![(None, Some(v.name.to_string()))],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-create-view").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-create-view").count()
    }

    #[test]
    fn a_table_named_view() {
        assert_eq!(fired("CREATE TABLE `view` (id INT PRIMARY KEY); -- CREATE VIEW", SqlDialect::MySql), 0);
    }
}
