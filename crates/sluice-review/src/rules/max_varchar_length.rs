use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    MaxVarcharLength,
    RuleMeta {
        id: "max-varchar-length",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a VARCHAR column longer than the limit: long values belong in TEXT, and wide rows slow every scan and sort",
        advice: "Use TEXT for long values, or a shorter VARCHAR (limit: [params.max-varchar-length] max)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, body VARCHAR(3000));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "2560", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", 2560) as u64;
        super::columns::longer_than(ctx.stmt, super::columns::Text::Varying, max)
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "max-varchar-length").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "max-varchar-length").count()
    }

    #[test]
    fn alter_forms() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN c VARCHAR(99999);", SqlDialect::MySql), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY c VARCHAR(99999);", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE t (id BIGINT PRIMARY KEY COMMENT 'CHAR(99999)'); -- VARCHAR(99999)", SqlDialect::MySql), 0);
    }
}
