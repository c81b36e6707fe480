use sqlparser::ast::Statement;
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireTableSchema,
    RuleMeta {
        id: "require-table-schema",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "CREATE TABLE without a schema: the table lands in whatever schema search_path names first",
        advice: "Qualify the name: CREATE TABLE app.orders (…)",
        bad: "CREATE TABLE orders (id bigint PRIMARY KEY);",
        good: "CREATE TABLE app.orders (id bigint PRIMARY KEY);",
        opt_in: true,
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::CreateTable(t) if t.name.0.len() < 2 && !t.temporary => vec![(None, Some(t.name.to_string()))],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-table-schema").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-table-schema").count()
    }

    #[test]
    fn temporary_tables_need_none() {
        assert_eq!(fired("CREATE TEMP TABLE scratch (id int);", SqlDialect::Postgres), 0);
        assert_eq!(fired("CREATE TABLE \"public.orders\" (id int);", SqlDialect::Postgres), 1, "a dot inside a quoted name");
    }
}
