use sqlparser::ast::{ColumnOption, Statement};
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    MaxOnUpdateTimestampColumns,
    RuleMeta {
        id: "max-on-update-timestamp-columns",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "more than one column of the table updates itself with ON UPDATE CURRENT_TIMESTAMP",
        advice: "Keep one auto-updated timestamp (updated_at); set the others explicitly (limit: [params.max-on-update-timestamp-columns] max)",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY, a TIMESTAMP DEFAULT NOW() ON UPDATE NOW(), b TIMESTAMP DEFAULT NOW() ON UPDATE NOW());",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY, created_at TIMESTAMP DEFAULT NOW(), updated_at TIMESTAMP DEFAULT NOW() ON UPDATE NOW());",
        params: &[crate::rule::Param { name: "max", kind: crate::rule::ParamKind::Count, default: "1", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let max = ctx.settings.int(META.id, "max", 1);
        let Statement::CreateTable(_) = ctx.stmt else { return vec![] };
        let auto: Vec<_> = super::columns::columns(ctx.stmt).into_iter().filter(|c| c.has(|o| matches!(o, ColumnOption::OnUpdate(_)))).collect();
        if auto.len() > max {
            let names: Vec<String> = auto.iter().map(|c| c.name.value.clone()).collect();
            vec![(None, Some(format!("{}: {} > {max}", names.join(", "), auto.len())))]
        } else {
            vec![]
        }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "max-on-update-timestamp-columns").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "max-on-update-timestamp-columns").count()
    }

    #[test]
    fn one_is_fine() {
        assert_eq!(fired("CREATE TABLE t (id INT PRIMARY KEY, a TIMESTAMP ON UPDATE NOW() COMMENT 'ON UPDATE NOW()');", SqlDialect::MySql), 0);
    }
}
