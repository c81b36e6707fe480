use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Default limit in bytes (policy: `[params.max-statement-size] max = N`).
const MAX: usize = 1 << 20;

rule!(
    MaxStatementSize,
    RuleMeta {
        id: "max-statement-size",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "the statement is larger than 1 MiB: slow to parse and replicate, and it may exceed max_allowed_packet",
        advice: "Split it into batches of rows",
        bad: "INSERT INTO t (id, v) VALUES (1, 'a fairly long value that goes past a small limit');",
        good: "INSERT INTO t (id) VALUES (1);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "1048576 (1 MiB)", example: "40" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", MAX);
        if ctx.text.len() > max { vec![(None, Some(format!("{} bytes", ctx.text.len())))] } else { vec![] }
    }
);
