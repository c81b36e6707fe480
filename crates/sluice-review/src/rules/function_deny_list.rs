use sqlparser::tokenizer::Token;
use super::BOTH;
use crate::finding::Level;
use crate::rule::{Category, RuleMeta};

/// Denied by default: functions that stall or lock sessions, read or write server files, or signal other backends.
const DENIED: &[&str] = &[
    "sleep",
    "benchmark",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "load_file",
    "sys_exec",
    "sys_eval",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "pg_advisory_lock",
];

rule!(
    FunctionDenyList,
    RuleMeta {
        id: "function-deny-list",
        category: Category::StatementSafety,
        engines: BOTH,
        level: Level::Error,
        summary: "the statement calls a function on the deny list (sleeps, locks, reads server files or signals other sessions)",
        advice: "Remove the call (list: [params.function-deny-list] functions)",
        bad: "SELECT SLEEP(5);",
        good: "SELECT NOW();",
        params: &[crate::rule::Param { name: "functions", kind: crate::rule::ParamKind::Names, default: "sleep, benchmark, get_lock, load_file, pg_sleep, pg_terminate_backend, pg_read_file, lo_import, dblink, …", example: "" }],
        ..RuleMeta::DEFAULT
    },
    |ctx| {
        let denied = ctx.settings.list(META.id, "functions").unwrap_or_else(|| DENIED.iter().map(|s| s.to_string()).collect());
        // Tokenize only a statement that names one of them somewhere.
        let lower = ctx.text.to_ascii_lowercase();
        if !denied.iter().any(|d| lower.contains(d.as_str())) {
            return vec![];
        }
        let toks = crate::recover::tokens(ctx.text, ctx.dialect);
        let mut out = Vec::new();
        for w in toks.windows(2) {
            // A call: an unquoted word right before `(`; strings, comments and quoted names never match.
            let (Some(name), Token::LParen) = (&w[0].word, &w[1].token) else { continue };
            let name = name.to_ascii_lowercase();
            if denied.contains(&name) && !out.iter().any(|(_, d): &(crate::rule::At, Option<String>)| d.as_deref() == Some(name.as_str())) {
                out.push((None, Some(name)));
            }
        }
        out
    }
);

#[cfg(test)]
mod tests {
    use crate::SqlDialect;

    #[allow(dead_code)]
    fn fired(sql: &str, d: SqlDialect) -> usize {
        let m = crate::rules::all_meta().into_iter().find(|m| m.id == "function-deny-list").expect("registered");
        crate::review_with(sql, d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == "function-deny-list").count()
    }

    #[test]
    fn names_strings_and_comments() {
        assert_eq!(fired("SELECT pg_sleep(1);", SqlDialect::Postgres), 1);
        assert_eq!(fired("SELECT sleep_minutes, 'sleep(5)' FROM t WHERE id = 1; -- sleep(5)", SqlDialect::MySql), 0);
        assert_eq!(fired("SELECT `sleep`(5);", SqlDialect::MySql), 0, "a quoted name is a user's function");
    }
}
