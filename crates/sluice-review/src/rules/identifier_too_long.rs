use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// A cheap pass before tokenizing: a name over 63 bytes needs a run of that many bytes without a
/// separator, or two quotes at least that far apart (a quoted name may hold spaces).
fn may_hold_a_long_name(text: &str) -> bool {
    let b = text.as_bytes();
    let mut run = 0usize;
    let mut last_quote: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // A string literal is no name: skip it (doubled quotes and backslashes included).
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            run = 0;
            continue;
        }
        if matches!(c, b'"' | b'`') {
            if last_quote.is_some_and(|q| i - q > 64) {
                return true;
            }
            last_quote = Some(i);
        }
        if c.is_ascii_whitespace() || matches!(c, b'(' | b')' | b',' | b';' | b'=') {
            run = 0;
        } else {
            run += 1;
            if run > 63 {
                return true;
            }
        }
        i += 1;
    }
    false
}

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
        if !may_hold_a_long_name(ctx.text) {
            return vec![];
        }
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
