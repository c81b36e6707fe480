use super::BOTH;
use crate::finding::Level;

/// Default pattern; a policy sets another with `[params.<id>] pattern = "regex"`.
static DEFAULT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"^idx_[a-z0-9_]+$").expect("valid default pattern"));
use crate::rule::{Category, RuleMeta};

rule!(
    IndexNamePattern,
    RuleMeta {
        id: "index-name-pattern",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the index name does not follow idx_<table>_<columns>",
        advice: "Name indexes idx_<table>_<columns> so plans and errors say what they are",
        bad: "CREATE INDEX account ON orders (account_id);",
        good: "CREATE INDEX idx_orders_account ON orders (account_id);",
        params: &[crate::rule::Param { name: "pattern", kind: crate::rule::ParamKind::Pattern, default: "^idx_[a-z0-9_]+$", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let re = ctx.settings.pattern(META.id, &DEFAULT);
        // Every plain index the statement makes: CREATE INDEX, an index inside CREATE TABLE, ALTER TABLE … ADD INDEX.
        crate::rules::indexes::new_indexes(ctx.stmt)
            .into_iter()
            .filter(|ix| ix.kind == crate::rules::indexes::IndexKind::Plain)
            .filter_map(|ix| ix.name)
            .filter(|n| !re.is_match(n))
            .map(|n| (None, Some(format!("{n} does not match {}", re.as_str()))))
            .collect()
    }
);
