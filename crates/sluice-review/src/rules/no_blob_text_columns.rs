
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

fn is_lob(t: &str) -> bool {
    let t = t.to_ascii_uppercase();
    ["TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"].iter().any(|x| t == *x || t.starts_with(&format!("{x}(")))
}

rule!(
    NoBlobTextColumns,
    RuleMeta {
        id: "no-blob-text-columns",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "TEXT/BLOB columns are stored off-page, cannot have defaults (before 8.0.13) and slow sorts and temporary tables",
        advice: "Use VARCHAR with a limit when one fits; keep large objects in object storage",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, body LONGTEXT);",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, body VARCHAR(2000));",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        super::columns::columns(ctx.stmt)
            .into_iter().filter(|c| is_lob(&c.data_type.to_string())).map(|c| (ident_at(c.name), Some(c.name.value.clone()))).collect()
    }
);
