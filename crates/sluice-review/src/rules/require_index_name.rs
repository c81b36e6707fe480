
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireIndexName,
    RuleMeta {
        id: "require-index-name",
        category: Category::SchemaDesign,
        engines: BOTH,
        level: Level::Warning,
        summary: "the index has no name, so the server makes one up and later changes cannot name it reliably",
        advice: "Name it: CREATE INDEX idx_<table>_<columns> ON …",
        bad: "CREATE INDEX ON orders (user_id);",
        good: "CREATE INDEX idx_orders_user ON orders (user_id);",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        use crate::rules::indexes::IndexKind;
        // CREATE [UNIQUE] INDEX without a name, and plain indexes left unnamed inside CREATE or ALTER TABLE.
        // (A key or a unique constraint inside a table definition is named by its constraint.)
        crate::rules::indexes::new_indexes(ctx.stmt)
            .into_iter()
            .filter(|ix| ix.name.is_none() && (ix.standalone || ix.kind == IndexKind::Plain))
            .map(|ix| (None, Some(format!("{} ({})", ix.table, ix.columns.join(", ")))))
            .collect()
    }
);
