use sqlparser::ast::Statement;
use super::MYSQL;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

rule!(
    NoOrderByInDml,
    RuleMeta {
        id: "no-order-by-in-dml",
        category: Category::StatementSafety,
        engines: MYSQL,
        level: Level::Warning,
        summary: "UPDATE or DELETE with ORDER BY: the sort runs over every matching row, and statement-based replication needs it to be deterministic",
        advice: "Drop the ORDER BY, or batch by primary key ranges",
        bad: "UPDATE orders SET status = 'x' WHERE id > 10 ORDER BY id;",
        good: "UPDATE orders SET status = 'x' WHERE id > 10;",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let order = match ctx.stmt {
            Statement::Update(u) => &u.order_by,
            Statement::Delete(d) => &d.order_by,
            _ => return vec![],
        };
        if order.is_empty() { vec![] } else { vec![(None, None)] }
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-order-by-in-dml").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-order-by-in-dml").count()
    }

    #[test]
    fn delete_form_and_select() {
        assert_eq!(fired("DELETE FROM t WHERE a = 1 ORDER BY id LIMIT 10;", SqlDialect::MySql), 1);
        assert_eq!(fired("SELECT a FROM t WHERE a = 1 ORDER BY id; -- UPDATE t ORDER BY", SqlDialect::MySql), 0);
    }
}
