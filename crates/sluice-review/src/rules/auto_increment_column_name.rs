use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new("^id$").expect("valid default pattern"));

rule!(
    AutoIncrementColumnName,
    RuleMeta {
        id: "auto-increment-column-name",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "an AUTO_INCREMENT column whose name does not match the pattern",
        advice: "Name the auto-increment key `id` (pattern: [params.auto-increment-column-name] pattern)",
        bad: "CREATE TABLE t (seq BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY);",
        good: "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^id$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        super::columns::columns(ctx.stmt)
            .into_iter()
            .filter(|c| c.has(|o| o.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")) && !re.is_match(&c.name.value))
            .map(|c| (crate::rule::ident_at(c.name), Some(format!("{} does not match {}", c.name.value, re.as_str()))))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "auto-increment-column-name").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "auto-increment-column-name").count()
    }

    #[test]
    fn alter_form() {
        assert_eq!(fired("ALTER TABLE t ADD COLUMN seq BIGINT AUTO_INCREMENT PRIMARY KEY;", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq INT COMMENT 'AUTO_INCREMENT');", SqlDialect::MySql), 0);
    }
}
