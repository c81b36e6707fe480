use sqlparser::ast::{AlterType, AlterTypeOperation, Statement};
use super::POSTGRES;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    RequireEnumValueOrdering,
    RuleMeta {
        id: "require-enum-value-ordering",
        category: Category::SchemaDesign,
        engines: POSTGRES,
        level: Level::Warning,
        summary: "ALTER TYPE … ADD VALUE without BEFORE or AFTER puts the value last, whatever order the labels should sort in",
        advice: "Say where the value goes: ADD VALUE 'x' BEFORE 'y' (or AFTER)",
        bad: "ALTER TYPE order_status ADD VALUE 'refunded';",
        good: "ALTER TYPE order_status ADD VALUE 'refunded' AFTER 'paid';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::AlterType(AlterType { operation: AlterTypeOperation::AddValue(v), .. }) if v.position.is_none() => vec![(None, Some(v.value.value.clone()))],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "require-enum-value-ordering").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "require-enum-value-ordering").count()
    }

    #[test]
    fn only_add_value() {
        assert_eq!(fired("ALTER TYPE e ADD VALUE 'before';", SqlDialect::Postgres), 1, "a label named like the keyword");
        assert_eq!(fired("ALTER TYPE e RENAME VALUE 'a' TO 'b';", SqlDialect::Postgres), 0);
    }
}
