use sqlparser::ast::Statement;

use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// What TRUNCATE costs on the engine under review.
fn why(dialect: crate::SqlDialect) -> &'static str {
    match dialect {
        crate::SqlDialect::MySql => "MySQL/MariaDB commit it implicitly: it cannot be rolled back",
        crate::SqlDialect::Postgres => "PostgreSQL takes an ACCESS EXCLUSIVE lock for it, and CASCADE empties every referencing table too",
    }
}

rule!(
    NoTruncate,
    RuleMeta {
        id: "no-truncate",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Warning,
        summary: "TRUNCATE removes every row at once",
        advice: "Delete in batches with a WHERE clause, or take a backup first and acknowledge with an ignore comment",
        bad: "TRUNCATE TABLE sessions;",
        good: "DELETE FROM sessions WHERE expires_at < '2024-01-01';",
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        match ctx.stmt {
            Statement::Truncate(_) => vec![(None, Some(why(ctx.dialect).into()))],
            // MySQL's `ALTER TABLE t TRUNCATE PARTITION p` empties the partition the same way.
            Statement::AlterTable(_) if ctx.dialect == crate::SqlDialect::MySql => {
                let code = ctx.code();
                let truncates = code.windows(2).any(|w| w[0].depth == 0 && w[0].word.as_deref() == Some("TRUNCATE") && w[1].word.as_deref() == Some("PARTITION"));
                if truncates { vec![(None, Some(format!("TRUNCATE PARTITION: {}", why(ctx.dialect))))] } else { vec![] }
            }
            _ => vec![],
        }
    }
);

#[cfg(test)]
mod tests {
    #[test]
    fn the_message_names_the_engine_under_review() {
        let msg = |d| crate::review("TRUNCATE orders;", d).findings.into_iter().find(|f| f.rule == "no-truncate").map(|f| f.message).unwrap_or_default();
        let pg = msg(crate::SqlDialect::Postgres);
        assert!(pg.contains("PostgreSQL") && !pg.contains("MySQL"), "{pg}");
        let my = msg(crate::SqlDialect::MySql);
        assert!(my.contains("MySQL") && !my.contains("PostgreSQL"), "{my}");
    }
}
