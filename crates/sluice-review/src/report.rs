//! Findings as text (with the source line and a caret), JSON, or SARIF 2.1.0 for GitHub code scanning.

use std::fmt::Write;

use serde_json::json;

use crate::finding::{Finding, Level};
use crate::rules;

/// `file:line:column: level[rule] message`, then the source line and a caret under the column.
pub fn text(file: &str, sql: &str, findings: &[Finding]) -> String {
    let lines: Vec<&str> = sql.lines().collect();
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(out, "{file}:{}:{}: {}[{}] {}", f.line, f.column, f.level.as_str(), f.rule, f.message);
        if let Some(src) = lines.get(f.line.saturating_sub(1)) {
            let gutter = format!("{:>5} | ", f.line);
            let _ = writeln!(out, "{gutter}{src}");
            let pad: String = src.chars().take(f.column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            let _ = writeln!(out, "{:>5} | {pad}^", "");
        }
    }
    out
}

pub fn json(file: &str, statements: usize, findings: &[Finding]) -> serde_json::Value {
    json!({ "file": file, "statements": statements, "findings": findings })
}

fn sarif_level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "note",
    }
}

/// A file name as a SARIF artifact URI: absolute paths become `file://` URIs (a relative reference must not
/// start with `/`), relative ones keep forward slashes; characters URIs do not allow are percent-encoded.
pub fn artifact_uri(file: &str) -> String {
    let encoded: String = file
        .replace('\\', "/")
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    if encoded.starts_with('/') { format!("file://{encoded}") } else { encoded }
}

/// One SARIF 2.1.0 log for several files.
pub fn sarif(files: &[(String, Vec<Finding>)]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = rules::all_meta()
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "shortDescription": { "text": m.summary },
                "fullDescription": { "text": format!("{}. {}", m.summary, m.advice) },
                "defaultConfiguration": { "level": sarif_level(m.level) },
                "help": { "text": format!("{}\n\nBad:\n{}\n\nGood:\n{}", m.advice, m.bad, m.good) },
                "properties": { "category": m.category, "engines": m.engines }
            })
        })
        .chain(["parse-error", "unused-ignore"].iter().map(|id| json!({ "id": id, "shortDescription": { "text": id } })))
        .collect();
    let results: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|(file, findings)| {
            findings.iter().map(move |f| {
                json!({
                    "ruleId": f.rule,
                    "level": sarif_level(f.level),
                    "message": { "text": f.message },
                    "locations": [{ "physicalLocation": {
                        "artifactLocation": { "uri": artifact_uri(file) },
                        "region": { "startLine": f.line, "startColumn": f.column }
                    }}]
                })
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "sluice-review", "informationUri": "https://github.com/sluice", "version": env!("CARGO_PKG_VERSION"), "rules": rules } },
            "columnKind": "unicodeCodePoints",
            "results": results
        }]
    })
}

#[cfg(test)]
mod tests {
    use crate::{SqlDialect, review};

    #[test]
    fn artifact_uris() {
        assert_eq!(super::artifact_uri("/tmp/a b.sql"), "file:///tmp/a%20b.sql");
        assert_eq!(super::artifact_uri("migrations/001.sql"), "migrations/001.sql");
    }

    #[test]
    fn text_shows_the_line_and_a_caret() {
        let sql = "SELECT 1;\n  DELETE FROM t;\n";
        let r = review(sql, SqlDialect::Postgres);
        let t = super::text("m.sql", sql, &r.findings);
        assert!(t.starts_with("m.sql:2:3: error[require-where-for-delete]"), "{t}");
        assert!(t.contains("    2 |   DELETE FROM t;\n      |   ^"), "{t}");
    }
}
