use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    MaxCharLength,
    RuleMeta {
        id: "max-char-length",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "a CHAR column longer than the limit: CHAR pads every value to its full length",
        advice: "Use VARCHAR for longer text (limit: [params.max-char-length] max)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, code CHAR(200));",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, code CHAR(2), name VARCHAR(200));",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "20", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", 20) as u64;
        super::columns::longer_than(ctx.stmt, super::columns::Text::Fixed, max)
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "max-char-length").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "max-char-length").count()
    }

    #[test]
    fn alter_forms() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN c CHAR(99999);", SqlDialect::MySql), 1);
        assert_eq!(fired("ALTER TABLE t MODIFY c CHAR(99999);", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE t (id BIGINT PRIMARY KEY COMMENT 'CHAR(99999)'); -- VARCHAR(99999)", SqlDialect::MySql), 0);
    }
}
