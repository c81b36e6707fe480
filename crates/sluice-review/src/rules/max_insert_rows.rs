use sqlparser::ast::{SetExpr, Statement};
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    MaxInsertRows,
    RuleMeta {
        id: "max-insert-rows",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "an INSERT with more rows than the limit: one long transaction that holds locks and lags replicas",
        advice: "Insert in batches (limit: [params.max-insert-rows] max)",
        bad: "INSERT INTO t (id) VALUES (1), (2), (3), (4);",
        good: "INSERT INTO t (id) VALUES (1), (2);",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "1000", example: "3" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", 1000);
        let Statement::Insert(i) = ctx.stmt else { return vec![] };
        let Some(q) = &i.source else { return vec![] };
        match q.body.as_ref() {
            SetExpr::Values(v) if v.rows.len() > max => vec![(None, Some(format!("{} rows > {max}", v.rows.len())))],
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "max-insert-rows").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "max-insert-rows").count()
    }

    #[test]
    fn a_string_is_one_row() {
        assert_eq!(fired("INSERT INTO t (v) VALUES ('(1), (2), (3), (4)');", SqlDialect::MySql), 0);
    }
}
