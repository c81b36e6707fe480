//! Running the rules over a file.

use std::collections::BTreeSet;

use sqlparser::ast::Statement;

use crate::SqlDialect;
use crate::finding::{Finding, Level};
use crate::rule::{Ctx, StmtFacts, StmtView};
use crate::rules;
use crate::split::{Piece, split};

type Span = sqlparser::tokenizer::Span;

/// The result of reviewing one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Review {
    pub statements: usize,
    pub findings: Vec<Finding>,
}

impl Review {
    /// The worst level found, if any.
    pub fn worst(&self) -> Option<Level> {
        self.findings.iter().map(|f| f.level).max()
    }
}

/// `sluice:ignore a, b` directives in a statement's leading or trailing comments.
fn ignores(piece: &Piece) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for text in [piece.leading.as_str(), piece.trailing.as_str()] {
        for line in text.lines() {
            if let Some(rest) = line.split("sluice:ignore").nth(1) {
                let rest = rest.trim_end_matches("*/");
                out.extend(rest.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
    }
    out
}

fn absolute(piece: &Piece, span: Option<Span>) -> (usize, usize) {
    match span {
        Some(s) if s.start.line > 0 => {
            let (l, c) = (s.start.line as usize, s.start.column as usize);
            if l == 1 { (piece.line, piece.column + c - 1) } else { (piece.line + l - 1, c) }
        }
        _ => (piece.line, piece.column),
    }
}

/// Position inside a parser error message (`… at Line: 2, Column: 7`).
fn error_position(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

fn stmt_facts(stmt: &sqlparser::ast::Statement, ctx: &Ctx<'_>) -> StmtFacts {
    use sqlparser::ast::Statement;
    let name = |n: &sqlparser::ast::ObjectName| rules::last_ident(n).to_ascii_lowercase();
    let table_statement = matches!(stmt, Statement::CreateTable(_) | Statement::AlterTable(_));
    let code: &[crate::code_words::Code] = if table_statement { ctx.code() } else { &[] };
    StmtFacts {
        engine: crate::code_words::option_values(code, &["ENGINE"], true).pop(),
        indexes: rules::indexes::new_indexes(stmt),
        foreign_keys: rules::indexes::new_foreign_keys(stmt),
        unguarded: rules::file::prefer_robust_stmts::unguarded(stmt),
        added_not_valid: rules::file::no_validate_in_same_transaction::added_not_valid(stmt),
        validated: rules::file::no_validate_in_same_transaction::validated(stmt),
        attaches_partition: match stmt {
            Statement::AlterTable(a) => code
                .windows(2)
                .position(|w| w[0].word.as_deref() == Some("ATTACH") && w[1].word.as_deref() == Some("PARTITION") && w[0].depth == 0)
                .and_then(|p| crate::code_words::name_at(code, p + 2))
                .map(|child| (name(&a.name), child.to_ascii_lowercase())),
            _ => None,
        },
        parsed: true,
        created_table: match stmt {
            Statement::CreateTable(t) => Some(name(&t.name)),
            _ => None,
        },
        altered_table: match stmt {
            Statement::AlterTable(a) => Some(name(&a.name)),
            _ => None,
        },
        targets: rules::file::schema_table_exists::target_tables(stmt),
        created_without_key: rules::file::require_primary_key::created_without_key(stmt),
        adds_primary_key: rules::file::require_primary_key::adds_primary_key(stmt),
    }
}

/// Records a finding of rule `meta` on statement `index` (unless ignored there) and that the rule fired.
type PushFinding<'a> = dyn Fn(&mut Vec<Finding>, &mut Vec<(usize, String)>, usize, &crate::rule::RuleMeta, Option<Span>, Option<String>) + Sync + 'a;

/// What one thread's share of the statements yields: findings, (statement, rule) pairs that fired, facts.
type ChunkResult = (Vec<Finding>, Vec<(usize, String)>, Vec<StmtFacts>);

/// Parses one statement, runs the statement rules on it, and returns what file rules need of it.
#[allow(clippy::too_many_arguments)]
fn check_statement(
    sql: &str,
    piece: &Piece,
    index: usize,
    dialect: SqlDialect,
    settings: &crate::policy::Settings,
    rules: &[&'static dyn crate::rule::Rule],
    created: &std::collections::HashMap<String, usize>,
    push: &PushFinding<'_>,
    findings: &mut Vec<Finding>,
    fired: &mut Vec<(usize, String)>,
) -> StmtFacts {
    // MySQL runs what `/*!NNNNN … */` holds: the rules read it as code (same length, positions stay).
    let opened =
        if dialect == SqlDialect::MySql { crate::recover::open_versioned_comments(piece.text(sql)) } else { std::borrow::Cow::Borrowed(piece.text(sql)) };
    let text = opened.as_ref();
    let statements = match crate::recover::parse(text, dialect) {
        crate::recover::Parsed::Ast(s) => s,
        // Statements the parser does not read but text rules do: no parse-error noise.
        crate::recover::Parsed::Known => {
            let ctx = crate::rule::UnparsedCtx { text, dialect, settings };
            for rule in rules {
                for (at, detail) in rule.check_unparsed(&ctx) {
                    push(findings, fired, index, rule.meta(), at, detail);
                }
            }
            return StmtFacts::default();
        }
        crate::recover::Parsed::Failed(_) if understood_by_text_rules(text) => return StmtFacts::default(),
        crate::recover::Parsed::Failed(e) => {
            let message = e.to_string();
            let (line, column) = match error_position(&message) {
                Some((1, c)) => (piece.line, piece.column + c.saturating_sub(1)),
                Some((l, c)) => (piece.line + l - 1, c),
                None => (piece.line, piece.column),
            };
            let message = message.split(" at Line: ").next().unwrap_or(&message).trim_start_matches("sql parser error: ");
            findings.push(Finding {
                rule: "parse-error".into(),
                level: Level::Warning,
                message: format!("this statement could not be parsed, so only text rules reviewed it: {message}"),
                line,
                column,
                statement: index,
            });
            return StmtFacts::default();
        }
    };
    let mut facts = None;
    for stmt in &statements {
        let ctx = Ctx { stmt, dialect, piece, text, settings, index, created, code: std::cell::OnceCell::new() };
        for rule in rules {
            for (at, detail) in rule.check(&ctx) {
                push(findings, fired, index, rule.meta(), at, detail);
            }
        }
        if facts.is_none() {
            facts = Some(stmt_facts(stmt, &ctx));
        }
    }
    facts.unwrap_or_default()
}

/// Statement kinds the text rules review (the parser of this sqlparser version does not read them).
const TEXT_STATEMENTS: &[&[&str]] = &[
    &["REINDEX"],
    &["CLUSTER"],
    &["OPTIMIZE"],
    &["LOCK"],
    &["CREATE", "TRIGGER"],
    &["CREATE", "PROCEDURE"],
    &["CREATE", "FUNCTION"],
    &["CREATE", "OR", "REPLACE"],
    &["CREATE", "DEFINER"],
];

fn understood_by_text_rules(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    TEXT_STATEMENTS.iter().any(|words| {
        let mut it = upper.split_whitespace();
        words.iter().all(|w| it.next().is_some_and(|x| x == *w || (w.ends_with("DEFINER") && x.starts_with("DEFINER"))))
    })
}

/// Reviews with the rules' default levels.
pub fn review(sql: &str, dialect: SqlDialect) -> Review {
    review_with(sql, dialect, &crate::policy::Settings::default())
}

/// Reviews with a policy's settings (levels, rules turned off, parameters).
/// The statements a schema-aware review asks the database to EXPLAIN (UPDATE and DELETE), as
/// (statement index, text) — the input of `sluice_engines::schema::collect`.
///
/// For PostgreSQL the text is the statement itself (PostgreSQL EXPLAINs an UPDATE inside a read-only
/// transaction). MariaDB and MySQL refuse that, so for them each statement becomes the SELECT that reads
/// the same rows (`UPDATE t SET … WHERE c ORDER BY o LIMIT n` → `SELECT 1 FROM t WHERE c ORDER BY o
/// LIMIT n`): its plan and row estimate are the UPDATE's, and it can be EXPLAINed where nothing can be
/// written. A statement that does not parse, or that is not a single UPDATE/DELETE, is left out.
pub fn explain_candidates(sql: &str, dialect: SqlDialect) -> Vec<(usize, String)> {
    split(sql, dialect)
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let text = p.text(sql);
            let head = text.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
            if head != "UPDATE" && head != "DELETE" {
                return None;
            }
            match dialect {
                SqlDialect::Postgres => Some((i, text.to_string())),
                SqlDialect::MySql => reading_select(text).map(|s| (i, s)),
            }
        })
        .collect()
}

/// The SELECT that reads the rows a MySQL UPDATE or DELETE would change.
fn reading_select(text: &str) -> Option<String> {
    use std::fmt::Write;
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    let crate::recover::Parsed::Ast(statements) = crate::recover::parse(text, SqlDialect::MySql) else { return None };
    let [stmt] = statements.as_slice() else { return None };
    let (from, selection, order_by, limit) = match stmt {
        Statement::Update(u) => {
            let mut tables = vec![u.table.to_string()];
            if let Some(sqlparser::ast::UpdateTableFromKind::BeforeSet(t) | sqlparser::ast::UpdateTableFromKind::AfterSet(t)) = &u.from {
                tables.extend(t.iter().map(ToString::to_string));
            }
            (tables.join(", "), &u.selection, &u.order_by, &u.limit)
        }
        Statement::Delete(d) => {
            let tables = match (&d.using, &d.from) {
                (Some(using), _) => using,
                (None, sqlparser::ast::FromTable::WithFromKeyword(t) | sqlparser::ast::FromTable::WithoutKeyword(t)) => t,
            };
            (list(&mut tables.iter().map(ToString::to_string)), &d.selection, &d.order_by, &d.limit)
        }
        _ => return None,
    };
    let mut out = format!("SELECT 1 FROM {from}");
    if let Some(w) = selection {
        write!(out, " WHERE {w}").ok()?;
    }
    if !order_by.is_empty() {
        write!(out, " ORDER BY {}", list(&mut order_by.iter().map(ToString::to_string))).ok()?;
    }
    if let Some(l) = limit {
        write!(out, " LIMIT {l}").ok()?;
    }
    Some(out)
}

pub fn review_with(sql: &str, dialect: SqlDialect, settings: &crate::policy::Settings) -> Review {
    let split = crate::split::split_file(sql, dialect);
    let pieces = split.pieces;
    let on = |m: &crate::rule::RuleMeta| m.engines.contains(&dialect) && settings.level_of(m).is_some();
    let rules: Vec<_> = rules::all().into_iter().filter(|r| on(r.meta())).collect();
    let file_rules: Vec<_> = rules::file_rules().into_iter().filter(|r| on(r.meta())).collect();
    let mut findings = Vec::new();
    let mut fired: Vec<BTreeSet<String>> = vec![BTreeSet::new(); pieces.len()];
    let ignored: Vec<BTreeSet<String>> = pieces.iter().map(ignores).collect();
    let push = |findings: &mut Vec<Finding>,
                fired: &mut Vec<(usize, String)>,
                index: usize,
                meta: &crate::rule::RuleMeta,
                at: Option<Span>,
                detail: Option<String>| {
        fired.push((index, meta.id.to_string()));
        if ignored[index].contains(meta.id) {
            return;
        }
        let (line, column) = absolute(&pieces[index], at);
        let message = match detail {
            Some(d) => format!("{} ({d}). {}", meta.summary, meta.advice),
            None => format!("{}. {}", meta.summary, meta.advice),
        };
        let level = settings.level_of(meta).unwrap_or(meta.level);
        findings.push(Finding { rule: meta.id.into(), level, message, line, column, statement: index });
    };
    // Tables the file creates (first creation wins), from each statement's first words.
    let mut created = std::collections::HashMap::new();
    for (index, piece) in pieces.iter().enumerate() {
        let text = piece.text(sql);
        let head = text.get(..text.len().min(200)).unwrap_or(text);
        if let Some(name) = crate::rule::created_table_name(&head.to_ascii_uppercase(), head) {
            created.entry(name).or_insert(index);
        }
    }
    // Parsing and statement rules are independent per statement: large files use every core.
    let threads = if pieces.len() < 512 { 1 } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8) };
    let chunk = pieces.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<ChunkResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let (rules, push, created) = (&rules, &push, &created);
                scope.spawn(move || {
                    let mut findings = Vec::new();
                    let mut fired = Vec::new();
                    let mut facts = Vec::with_capacity(part.len());
                    for (offset, piece) in part.iter().enumerate() {
                        let index = c * chunk + offset;
                        facts.push(check_statement(sql, piece, index, dialect, settings, rules, created, push, &mut findings, &mut fired));
                    }
                    (findings, fired, facts)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("review worker")).collect()
    });
    let mut facts: Vec<StmtFacts> = Vec::with_capacity(pieces.len());
    for (f, fi, fa) in results {
        findings.extend(f);
        for (index, id) in fi {
            fired[index].insert(id);
        }
        facts.extend(fa);
    }
    let views: Vec<StmtView<'_>> = pieces
        .iter()
        .zip(facts)
        .enumerate()
        .map(|(index, (piece, facts))| {
            let text = piece.text(sql);
            let mut head = text.len().min(256);
            while !text.is_char_boundary(head) {
                head -= 1;
            }
            let upper = if dialect == SqlDialect::MySql {
                crate::recover::open_versioned_comments(&text[..head]).trim_start().to_ascii_uppercase()
            } else {
                text[..head].to_ascii_uppercase()
            };
            StmtView { index, piece, text, upper, facts }
        })
        .collect();
    let mut file_fired = Vec::new();
    for rule in &file_rules {
        for (index, at, detail) in rule.check(&views, dialect, settings) {
            push(&mut findings, &mut file_fired, index, rule.meta(), at, detail);
        }
    }
    for (index, id) in file_fired {
        fired[index].insert(id);
    }
    for (index, piece) in pieces.iter().enumerate() {
        for id in ignored[index].difference(&fired[index]) {
            findings.push(Finding {
                rule: "unused-ignore".into(),
                level: Level::Warning,
                message: format!("`sluice:ignore {id}` ignores nothing here: remove it"),
                line: piece.line,
                column: piece.column,
                statement: index,
            });
        }
    }
    if let Some((line, column, delimiter)) = split.open_delimiter {
        findings.push(Finding {
            rule: "delimiter-never-reset".into(),
            level: Level::Warning,
            message: format!(
                "`DELIMITER {delimiter}` is never set back to `;`: the client sends the rest of the file as one packet, which the server runs only with multi-statements on; each statement in it was reviewed on its own"
            ),
            line,
            column,
            statement: 0,
        });
    }
    findings.sort_by_key(|f| (f.line, f.column));
    Review { statements: pieces.len(), findings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_findings_and_the_rest_is_reviewed() {
        let r = review("SELEC 1;\nDELETE FROM t;", SqlDialect::Postgres);
        assert_eq!(r.statements, 2);
        assert_eq!(r.findings[0].rule, "parse-error");
        assert_eq!(r.findings[0].line, 1);
        assert!(r.findings.iter().any(|f| f.rule == "require-where-for-delete" && f.line == 2));
    }

    #[test]
    fn ignores_and_unused_ignores() {
        let r = review("-- sluice:ignore require-where-for-delete\nDELETE FROM t;\nSELECT 1; -- sluice:ignore no-truncate", SqlDialect::MySql);
        assert!(!r.findings.iter().any(|f| f.rule == "require-where-for-delete"));
        let unused: Vec<_> = r.findings.iter().filter(|f| f.rule == "unused-ignore").collect();
        assert_eq!(unused.len(), 1);
        assert_eq!(unused[0].line, 3);
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const TOKENS: &[&str] = &[
        "SELECT",
        "DELETE",
        "UPDATE",
        "INSERT",
        "INTO",
        "FROM",
        "WHERE",
        "CREATE",
        "TABLE",
        "INDEX",
        "DROP",
        "ALTER",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "`",
        "$$",
        "$a$",
        "--",
        "/*",
        "*/",
        "#",
        "\n",
        "DELIMITER",
        "//",
        "1",
        "x",
        "é",
        "🦀",
        "\\",
        "=",
        "LIKE",
        "'%a'",
        "CONCURRENTLY",
        "NOT",
        "NULL",
        "PRIMARY KEY",
        "SET",
        "LIMIT",
        "ORDER BY",
        "RAND()",
        "serial",
        "timestamp",
    ];

    #[test]
    fn arbitrary_bytes_and_sql_like_garbage_never_panic() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..3000 {
            let len = (rng.next() % 200) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = review(&text, SqlDialect::MySql);
            let _ = review(&text, SqlDialect::Postgres);
            let soup: Vec<&str> = (0..(rng.next() % 40)).map(|_| TOKENS[(rng.next() % TOKENS.len() as u64) as usize]).collect();
            let soup = soup.join(if rng.next().is_multiple_of(2) { " " } else { "" });
            let _ = review(&soup, SqlDialect::MySql);
            let _ = review(&soup, SqlDialect::Postgres);
        }
    }
}

#[cfg(test)]
mod explain_tests {
    use super::*;

    #[test]
    fn mysql_dml_becomes_the_select_that_reads_the_same_rows() {
        let sql = "UPDATE t SET v = 1 WHERE id > 5 ORDER BY id LIMIT 10;\nDELETE FROM t WHERE v IS NULL;\nSELECT 1;\nDELETE t1 FROM t1 JOIN t2 ON t1.a = t2.a WHERE t2.b = 0;";
        let got = explain_candidates(sql, SqlDialect::MySql);
        assert_eq!(got[0], (0, "SELECT 1 FROM t WHERE id > 5 ORDER BY id LIMIT 10".to_string()));
        assert_eq!(got[1], (1, "SELECT 1 FROM t WHERE v IS NULL".to_string()));
        assert_eq!(got[2].0, 3);
        assert!(got[2].1.starts_with("SELECT 1 FROM t1 JOIN t2 ON t1.a = t2.a WHERE t2.b = 0"), "{}", got[2].1);
        assert_eq!(got.len(), 3);
        let pg = explain_candidates("UPDATE t SET v = 1 WHERE id = 2", SqlDialect::Postgres);
        assert_eq!(pg, vec![(0, "UPDATE t SET v = 1 WHERE id = 2".to_string())]);
    }
}

#[cfg(test)]
mod text_scan_tests {
    use super::*;

    fn rules_fired(sql: &str) -> Vec<String> {
        review(sql, SqlDialect::MySql).findings.into_iter().map(|f| f.rule).collect()
    }

    /// The false errors and silences of the issue: keywords inside identifiers, strings and comments.
    #[test]
    fn keywords_in_identifiers_strings_and_comments_are_not_options() {
        let cars = rules_fired("CREATE TABLE cars (id INT PRIMARY KEY, engine VARCHAR(20)) ENGINE=InnoDB COMMENT 'cars';");
        assert!(!cars.contains(&"require-innodb".to_string()), "{cars:?}");
        let myisam = rules_fired("CREATE TABLE cars (id INT PRIMARY KEY, engine VARCHAR(20)) ENGINE=MyISAM COMMENT 'cars';");
        assert!(myisam.contains(&"require-innodb".to_string()), "{myisam:?}");
        let in_comment = rules_fired("CREATE TABLE t (id INT PRIMARY KEY /* ENGINE=MyISAM */) ENGINE=InnoDB COMMENT 't';");
        assert!(!in_comment.contains(&"require-innodb".to_string()), "{in_comment:?}");
        let name = rules_fired("CREATE TABLE t (id INT PRIMARY KEY, charset_name VARCHAR(10)) DEFAULT CHARSET=utf8mb4 COMMENT 't';");
        assert!(!name.contains(&"charset-allow-list".to_string()), "{name:?}");
        let latin = rules_fired("CREATE TABLE t (id INT PRIMARY KEY, n VARCHAR(10) CHARACTER SET latin1) COMMENT 't';");
        assert!(latin.contains(&"charset-allow-list".to_string()), "a column's charset counts: {latin:?}");
        let string = rules_fired("CREATE TABLE t (id INT PRIMARY KEY COMMENT 'no zerofill here') COMMENT 't';");
        assert!(!string.contains(&"no-zerofill".to_string()), "{string:?}");
        let block = rules_fired("ALTER TABLE orders MODIFY COLUMN block_algorithm VARCHAR(500);");
        assert!(block.contains(&"alter-requires-online-algorithm".to_string()), "a column named block_algorithm is no ALGORITHM: {block:?}");
        let online = rules_fired("ALTER TABLE orders MODIFY COLUMN note VARCHAR(500), ALGORITHM=INPLACE, LOCK=NONE;");
        assert!(!online.contains(&"alter-requires-online-algorithm".to_string()), "{online:?}");
        let col_comment = review_with(
            "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'the id');",
            SqlDialect::MySql,
            &crate::policy::Policy::parse("[levels]\nrequire-table-comment = \"warning\"\n").unwrap().settings(None),
        );
        assert!(col_comment.findings.iter().any(|f| f.rule == "require-table-comment"), "a column COMMENT is not the table's");
        let auto = rules_fired("CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY) COMMENT 'auto_increment=5';");
        assert!(!auto.contains(&"no-auto-increment-initial-value".to_string()), "{auto:?}");
    }
}

/// The findings of the SQL review issue that are not one rule's own: each failed before.
#[cfg(test)]
mod issue_findings {
    use super::*;

    fn fired(sql: &str, d: SqlDialect) -> Vec<String> {
        review(sql, d).findings.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn statements_parsed_only_after_recovery_are_reviewed() {
        let multi = fired("UPDATE t1, t2 SET t1.a = t2.a;", SqlDialect::MySql);
        assert!(multi.contains(&"require-where-for-update".to_string()), "{multi:?}");
        assert!(!multi.contains(&"parse-error".to_string()), "{multi:?}");
        assert!(fired("ALTER TABLE sales TRUNCATE PARTITION p_2024_q4;", SqlDialect::MySql).contains(&"no-truncate".to_string()));
        assert!(fired("DELETE FROM tech_book WHERE name LIKE \"%abc\";", SqlDialect::MySql).contains(&"no-leading-wildcard-like".to_string()));
        assert!(fired("INSERT INTO t SELECT * FROM t ORDER BY rand();", SqlDialect::MySql).contains(&"no-order-by-rand".to_string()));
        assert!(fired("DELETE FROM t1 WHERE id = 1 ORDER BY rand();", SqlDialect::MySql).contains(&"no-order-by-rand".to_string()));
        let engine = fired("ALTER TABLE t ENGINE=MyISAM;", SqlDialect::MySql);
        assert!(engine.contains(&"require-innodb".to_string()), "{engine:?}");
    }

    #[test]
    fn versioned_comments_are_code_and_a_delimiter_never_reset_is_reported() {
        let v = fired("/*!40101 SET GLOBAL max_connections = 10 */;", SqlDialect::MySql);
        assert!(v.contains(&"no-set-global".to_string()), "{v:?}");
        let d = review("DELIMITER //\nCREATE TABLE a (id INT PRIMARY KEY);\nDELETE FROM a;", SqlDialect::MySql);
        assert!(d.findings.iter().any(|f| f.rule == "delimiter-never-reset" && f.line == 1), "{:?}", d.findings);
        assert!(d.findings.iter().any(|f| f.rule == "require-where-for-delete" && f.line == 3), "{:?}", d.findings);
    }

    #[test]
    fn tables_new_in_the_file_get_no_lock_warnings() {
        let new = "CREATE TABLE t (id bigint PRIMARY KEY);\nALTER TABLE t ADD COLUMN c text UNIQUE;\nALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES u (id);";
        let r = fired(new, SqlDialect::Postgres);
        assert!(!r.contains(&"add-unique-constraint-using-index".to_string()) && !r.contains(&"add-foreign-key-not-valid".to_string()), "{r:?}");
        let existing = fired("ALTER TABLE t ADD COLUMN c text UNIQUE;", SqlDialect::Postgres);
        assert!(existing.contains(&"add-unique-constraint-using-index".to_string()), "{existing:?}");
    }
}
