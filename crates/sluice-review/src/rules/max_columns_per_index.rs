
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Default limit (policy: `[params.<id>] max = N`).
const MAX: usize = 5;

rule!(
    MaxColumnsPerIndex,
    RuleMeta {
        id: "max-columns-per-index",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the index has more than 5 columns",
        advice: "Index the columns queries filter and sort on; a wide index is large and slow to maintain",
        bad: "CREATE INDEX idx_t_wide ON t (a, b, c, d, e, f);",
        good: "CREATE INDEX idx_t_ab ON t (a, b);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "5", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", MAX);
        crate::rules::indexes::new_indexes(ctx.stmt)
            .into_iter()
            .filter(|ix| ix.kind != crate::rules::indexes::IndexKind::Primary && ix.columns.len() > max)
            .map(|ix| (None, Some(format!("{} columns", ix.columns.len()))))
            .collect()
    }
);
