use std::collections::HashMap;

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::MYSQL;

file_rule!(
    MergeAlterTable,
    RuleMeta {
        id: "merge-alter-table",
        category: Category::MigrationSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "the same table is altered more than once in this file; each ALTER may rebuild it again",
        advice: "Merge the changes into one ALTER TABLE with comma-separated operations",
        bad: "ALTER TABLE orders ADD COLUMN a INT;\nALTER TABLE orders ADD COLUMN b INT;",
        good: "ALTER TABLE orders ADD COLUMN a INT, ADD COLUMN b INT;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for s in stmts {
            if let Some(name) = &s.facts.altered_table {
                let n = seen.entry(name.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    out.push((s.index, None, Some(format!("{name}, ALTER #{n}"))));
                }
            }
        }
        out
    }
);
