use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    IdentifierTooLong,
    RuleMeta {
        id: "identifier-too-long",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Error,
        summary: "a name is longer than the server allows (PostgreSQL silently cuts it to 63 bytes, so two names can become one; MySQL refuses more than 64 characters)",
        advice: "Use a shorter name",
        bad: "CREATE TABLE orders_with_a_name_that_goes_on_and_on_well_past_what_the_server_keeps (id bigint PRIMARY KEY);",
        good: "CREATE TABLE orders_archive (id bigint PRIMARY KEY);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let limit_bytes = ctx.dialect == crate::SqlDialect::Postgres;
        let mut out = Vec::new();
        for t in crate::recover::tokens(ctx.text, ctx.dialect) {
            let Token::Word(w) = &t.token else { continue };
            let too_long = if limit_bytes { w.value.len() > 63 } else { w.value.chars().count() > 64 };
            if too_long && w.keyword == Keyword::NoKeyword && !out.iter().any(|(_, d): &(crate::rule::At, Option<String>)| d.as_deref() == Some(w.value.as_str())) {
                out.push((None, Some(w.value.clone())));
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
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "identifier-too-long").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "identifier-too-long").count()
    }

    #[test]
    fn names_not_strings_or_comments() {
        let long = "x".repeat(64);
        assert_eq!(fired(&format!("CREATE INDEX {long} ON t (a);"), SqlDialect::Postgres), 1);
        assert_eq!(fired(&format!("CREATE INDEX {long} ON t (a);"), SqlDialect::MySql), 0, "64 characters are allowed on MySQL");
        assert_eq!(fired(&format!("ALTER TABLE t ADD COLUMN \"{long}\" int;"), SqlDialect::Postgres), 1, "quoted names count");
        assert_eq!(fired(&format!("INSERT INTO t (a) VALUES ('{long}'); -- {long}"), SqlDialect::Postgres), 0);
    }
}
