use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, CharacterLength, DataType, Statement};

use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta, ident_at};

/// Whether PostgreSQL can change to `new` without rewriting: a varchar widening (or varchar → text) keeps
/// the stored bytes. With the live type known that is checked; without it a varchar or text target is taken
/// as the widening it almost always is in migrations (schema-column-type-narrowing catches narrowings with
/// --schema-from).
fn binary_compatible(live: Option<&str>, new: &DataType) -> bool {
    let new_len = match new {
        DataType::Varchar(l) | DataType::CharacterVarying(l) => match l {
            Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
            _ => None,
        },
        DataType::Text => None,
        _ => return false,
    };
    let Some(live) = live else { return true };
    let live = live.to_ascii_lowercase();
    if live == "text" {
        return matches!(new, DataType::Text);
    }
    let Some(rest) = live.strip_prefix("character varying").or_else(|| live.strip_prefix("varchar")) else { return false };
    let old_len = rest.trim().trim_start_matches('(').trim_end_matches(')').parse::<u64>().ok();
    match (old_len, new_len) {
        (_, None) => true,
        (Some(old), Some(new)) => new >= old,
        (None, Some(_)) => false,
    }
}

rule!(
    NoAlterColumnType,
    RuleMeta {
        id: "no-alter-column-type",
        category: Category::MigrationSafety,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "changing a column's type rewrites the table under an ACCESS EXCLUSIVE lock (except a few binary-compatible widenings)",
        advice: "Add a new column of the new type, backfill in batches, switch, then drop the old column",
        bad: "ALTER TABLE orders ALTER COLUMN amount TYPE numeric(14,2);",
        good: "ALTER TABLE orders ADD COLUMN amount_v2 numeric(14,2);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let Statement::AlterTable(a) = ctx.stmt else { return vec![] };
        a.operations
            .iter()
            .filter_map(|o| match o {
                AlterTableOperation::AlterColumn { column_name, op: AlterColumnOperation::SetDataType { data_type, using, .. } } => {
                    let live = ctx
                        .settings
                        .schema
                        .as_ref()
                        .and_then(|s| s.tables.get(&crate::rules::last_ident(&a.name).to_ascii_lowercase()))
                        .and_then(|t| t.column_types.get(&column_name.value.to_ascii_lowercase()));
                    (using.is_some() || !binary_compatible(live.map(String::as_str), data_type))
                        .then(|| (ident_at(column_name), Some(format!("{column_name} → {data_type}"))))
                }
                _ => None,
            })
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    fn fired(sql: &str) -> usize {
        crate::review(sql, SqlDialect::Postgres).findings.iter().filter(|f| f.rule == "no-alter-column-type").count()
    }

    #[test]
    fn varchar_widenings_keep_the_bytes() {
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c TYPE varchar(200);"), 0);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c TYPE text;"), 0);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c TYPE bigint;"), 1);
        assert_eq!(fired("ALTER TABLE t ALTER COLUMN c TYPE text USING c::text;"), 1, "USING recomputes every row");
        assert!(!super::binary_compatible(Some("integer"), &sqlparser::ast::DataType::Text));
        assert!(super::binary_compatible(Some("character varying(20)"), &sqlparser::ast::DataType::Text));
        assert!(super::binary_compatible(Some("varchar(20)"), &sqlparser::ast::DataType::Varchar(Some(sqlparser::ast::CharacterLength::IntegerLength { length: 40, unit: None }))));
        assert!(!super::binary_compatible(Some("varchar(40)"), &sqlparser::ast::DataType::Varchar(Some(sqlparser::ast::CharacterLength::IntegerLength { length: 20, unit: None }))));
    }
}
