//! A file rule because an engine set at creation is often changed later in the same file: Sakila creates
//! `film_text` as MyISAM and then runs `/*!50610 ALTER TABLE film_text engine=InnoDB */` on servers that
//! have InnoDB full-text search. The table's engine is the last one the file gives it.

use crate::finding::Level;
use crate::rule::{Category, RuleMeta};
use crate::rules::MYSQL;

file_rule!(
    RequireInnodb,
    RuleMeta {
        id: "require-innodb",
        category: Category::SchemaDesign,
        engines: MYSQL,
        level: Level::Error,
        summary: "the table uses a storage engine other than InnoDB (no transactions, crash safety or row locks)",
        advice: "Use ENGINE=InnoDB",
        bad: "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=MyISAM;",
        good: "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=InnoDB;",
        ..RuleMeta::DEFAULT
    },
    |stmts, _dialect| {
        let table_of = |s: &crate::rule::StmtView<'_>| s.facts.created_table.clone().or_else(|| s.facts.altered_table.clone());
        let mut out = Vec::new();
        for (k, s) in stmts.iter().enumerate() {
            let Some(engine) = s.facts.engine.as_deref().filter(|e| *e != "innodb") else { continue };
            let table = table_of(s);
            let changed_later = stmts[k + 1..].iter().any(|later| later.facts.engine.is_some() && table.is_some() && table_of(later) == table);
            if !changed_later {
                out.push((s.index, None, Some(engine.to_string())));
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    fn fires(sql: &str) -> usize {
        crate::review(sql, crate::SqlDialect::MySql).findings.iter().filter(|f| f.rule == "require-innodb").count()
    }

    #[test]
    fn the_last_engine_the_file_sets_counts() {
        let sakila =
            "CREATE TABLE film_text (film_id SMALLINT NOT NULL, PRIMARY KEY (film_id)) ENGINE=MyISAM;\n/*!50610 ALTER TABLE film_text engine=InnoDB */;";
        assert_eq!(fires(sakila), 0);
        assert_eq!(fires("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB;\nALTER TABLE t ENGINE=MyISAM;"), 1, "the ALTER form");
        assert_eq!(fires("ALTER TABLE t ENGINE = Aria, ALGORITHM=COPY;"), 1);
        assert_eq!(
            fires("CREATE TABLE t (id INT PRIMARY KEY, engine VARCHAR(9) COMMENT 'ENGINE=MyISAM') /* ENGINE=MyISAM */ ENGINE=InnoDB;"),
            0,
            "identifier, string, comment"
        );
    }
}
