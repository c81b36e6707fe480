use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::MYSQL;

file_rule!(
    NoCreateEvent,
    RuleMeta {
        id: "no-create-event",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Warning,
        summary: "the change creates a scheduled event: it runs unseen by reviewers, on the server's clock, and only where the event scheduler is on",
        advice: "Schedule the job outside the database (cron, the scheduler of your platform)",
        bad: "CREATE EVENT purge ON SCHEDULE EVERY 1 DAY DO DELETE FROM sessions WHERE expires_at < NOW();",
        good: "DELETE FROM sessions WHERE expires_at < NOW();",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect, _settings| {
        stmts
            .iter()
            .filter(|s| {
                let mut w = s.upper.split_whitespace().filter(|w| !w.starts_with("DEFINER") && !w.starts_with("/*!"));
                w.next() == Some("CREATE") && w.next() == Some("EVENT")
            })
            .map(|s| (s.index, None, None))
            .collect()
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "no-create-event").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "no-create-event").count()
    }

    #[test]
    fn definer_and_versioned_forms() {
        assert_eq!(fired("CREATE DEFINER=`root`@`localhost` EVENT e ON SCHEDULE EVERY 1 HOUR DO SELECT 1;", SqlDialect::MySql), 1);
        assert_eq!(fired("CREATE TABLE event (id INT PRIMARY KEY); -- CREATE EVENT", SqlDialect::MySql), 0);
    }
}
