//! A file rule because indexes are often created one statement at a time: a `CREATE INDEX` that repeats
//! an index the same file (or the live schema) already gave the table is as much a duplicate as two in one
//! CREATE TABLE.

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::BOTH;

file_rule!(
    NoDuplicateIndex,
    RuleMeta {
        id: "no-duplicate-index",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "two indexes of the table have the same columns in the same order",
        advice: "Keep one of them",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, UNIQUE (a), UNIQUE (a));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, UNIQUE (a));",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, settings| {
        let mut seen: std::collections::HashMap<String, Vec<Vec<String>>> = std::collections::HashMap::new();
        if let Some(schema) = &settings.schema {
            for (table, info) in &schema.tables {
                seen.insert(table.clone(), info.indexes.iter().map(|i| i.iter().map(|c| c.to_ascii_lowercase()).collect()).collect());
            }
        }
        let mut out = Vec::new();
        for s in stmts {
            for ix in &s.facts.indexes {
                let list = seen.entry(ix.table.clone()).or_default();
                if list.contains(&ix.columns) {
                    out.push((s.index, None, Some(format!("{} ({})", ix.table, ix.columns.join(", ")))));
                } else {
                    list.push(ix.columns.clone());
                }
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fired(sql: &str) -> usize {
        crate::review(sql, SqlDialect::MySql).findings.iter().filter(|f| f.rule == "no-duplicate-index").count()
    }

    #[test]
    fn across_statements_and_alter_forms() {
        let bytebase = "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT);\nCREATE INDEX idx_customer_id ON orders (customer_id);\nCREATE INDEX idx_customer_id_duplicate ON orders (customer_id);";
        assert_eq!(fired(bytebase), 1);
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY, a INT, KEY idx_a (a));\nALTER TABLE t ADD INDEX idx_a2 (a);"), 1);
        assert_eq!(fired("CREATE INDEX idx_a ON t (a);\nCREATE INDEX idx_a ON other (a);"), 0, "another table");
        assert_eq!(fired("CREATE INDEX idx_a ON t (a); -- CREATE INDEX idx_b ON t (a)"), 0);
    }
}
