//! Data-export tickets: one SELECT streamed to CSV (RFC 4180, with a header) or JSON Lines, masked, cut at
//! a row limit, and kept in the store until downloaded through a link that expires and works once.
//!
//! Options are a directive line in the ticket's statements, so approvers approve them with the SQL (the
//! hash covers them): `-- sluice:export format=csv|jsonl limit=N mask=column:how,table.column:how`, with
//! `how` one of `null`, `hash` (HMAC-SHA256 under a key made for this export and then forgotten: equal
//! values stay equal inside one file, and cannot be looked up) and `partial` (first and last characters).
//!
//! Masking follows result-column **lineage** (`sluice_review::lineage`): a result column is masked when
//! any base column its value can come from matches a rule, whatever aliases, subqueries, functions or
//! UNIONs sit in between; a query whose lineage cannot be traced is refused. Built-in rules always apply
//! (see [`BUILT_IN`]); a ticket can add rules, never lift them.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sluice_engines::ConnectSpec;
use sluice_review::SqlDialect;
use sluice_review::lineage::{MapCatalog, OutputColumn, trace};
use sluice_store::exports::NewExport;

/// How a masked value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mask {
    Partial,
    Hash,
    Null,
}

impl Mask {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "partial" => Some(Mask::Partial),
            "hash" => Some(Mask::Hash),
            "null" => Some(Mask::Null),
            _ => None,
        }
    }
}

/// Column-name patterns masked in every export.
pub const BUILT_IN: &[(&str, Mask)] = &[
    ("*password*", Mask::Null),
    ("*passwd*", Mask::Null),
    ("*secret*", Mask::Null),
    ("*token*", Mask::Null),
    ("*id_card*", Mask::Hash),
    ("*idcard*", Mask::Hash),
    ("*ssn*", Mask::Hash),
    ("*email*", Mask::Partial),
    ("*phone*", Mask::Partial),
    ("*mobile*", Mask::Partial),
];

/// Most rows an export may hold, and its default.
pub const MAX_ROWS: u64 = 1_000_000;
const DEFAULT_ROWS: u64 = 10_000;
/// Largest export kept in the store.
const MAX_BYTES: usize = 64 * 1024 * 1024;
const CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    pub jsonl: bool,
    pub limit: u64,
    /// (`column` or `table.column`, lower-cased; how)
    pub masks: Vec<(String, Mask)>,
}

/// The options in the statements' `-- sluice:export` line (defaults without one), and the SELECT.
pub fn options(statements: &str) -> Result<(ExportOptions, String), String> {
    let mut o = ExportOptions { jsonl: false, limit: DEFAULT_ROWS, masks: Vec::new() };
    let mut sql = String::new();
    for (i, line) in statements.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("-- sluice:export") else {
            sql.push_str(line);
            sql.push('\n');
            continue;
        };
        for word in rest.split_whitespace() {
            let (k, v) = word.split_once('=').ok_or_else(|| format!("line {}: `{word}` is not key=value", i + 1))?;
            match k {
                "format" => {
                    o.jsonl = match v {
                        "csv" => false,
                        "jsonl" => true,
                        _ => return Err(format!("line {}: format `{v}` is not csv or jsonl", i + 1)),
                    }
                }
                "limit" => {
                    o.limit =
                        v.parse().ok().filter(|n| (1..=MAX_ROWS).contains(n)).ok_or_else(|| format!("line {}: limit `{v}` is not 1–{MAX_ROWS}", i + 1))?;
                }
                "mask" => {
                    for m in v.split(',') {
                        let (col, how) = m.rsplit_once(':').ok_or_else(|| format!("line {}: mask `{m}` is not column:how", i + 1))?;
                        let how = Mask::parse(how).ok_or_else(|| format!("line {}: mask `{how}` is not null, hash or partial", i + 1))?;
                        o.masks.push((col.to_ascii_lowercase(), how));
                    }
                }
                other => return Err(format!("line {}: `{other}` is not an export option (format, limit, mask)", i + 1)),
            }
        }
    }
    let sql = sql.trim().trim_end_matches(';').trim().to_string();
    Ok((o, sql))
}

use sluice_core::glob::glob_match as glob;

/// The strongest mask any source of the column calls for.
fn mask_for(col: &OutputColumn, extra: &[(String, Mask)]) -> Option<Mask> {
    let mut best = None;
    for src in &col.sources {
        let name = src.rsplit('.').next().unwrap_or(src);
        for (pattern, how) in BUILT_IN {
            if glob(pattern, name) {
                best = best.max(Some(*how));
            }
        }
        for (rule, how) in extra {
            if rule == src || rule == name || glob(rule, name) {
                best = best.max(Some(*how));
            }
        }
    }
    best
}

fn partial(v: &str) -> String {
    let chars: Vec<char> = v.chars().collect();
    if let Some(at) = v.find('@') {
        let (local, domain) = v.split_at(at);
        let first: String = local.chars().take(1).collect();
        return format!("{first}***{domain}");
    }
    match chars.len() {
        0..=3 => "*".repeat(chars.len()),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 3), chars[n - 2..].iter().collect::<String>()),
    }
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\r', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}

/// Runs the export of one target and returns what to keep.
pub async fn run(spec: &ConnectSpec, statements: &str, dialect: SqlDialect, target_seq: i64) -> Result<(NewExport, u64), String> {
    let (opts, sql) = options(statements)?;
    let catalog = MapCatalog(sluice_engines::export::base_columns(spec).await?);
    let lineage = trace(&sql, dialect, &catalog).map_err(|e| format!("the export cannot be masked by lineage, so it does not run: {e}"))?;
    let masks: Vec<Option<Mask>> = lineage.iter().map(|c| mask_for(c, &opts.masks)).collect();
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut out = String::new();
    let mut chunks = Vec::new();
    let mut digest = Sha256::new();
    let mut bytes = 0usize;
    let mut header_done = false;
    let flush = |out: &mut String, chunks: &mut Vec<String>, digest: &mut Sha256, bytes: &mut usize, force: bool| -> Result<(), String> {
        if out.len() >= CHUNK_BYTES || (force && !out.is_empty()) {
            digest.update(out.as_bytes());
            *bytes += out.len();
            if *bytes > MAX_BYTES {
                return Err(format!("the export is larger than {} MiB: lower its limit", MAX_BYTES / 1024 / 1024));
            }
            chunks.push(std::mem::take(out));
        }
        Ok(())
    };
    let (columns, rows) = sluice_engines::export::stream(spec, &sql, opts.limit, |columns, values| {
        if columns.len() != masks.len() {
            return Err(format!("the query returned {} columns where its lineage has {}: refused", columns.len(), masks.len()));
        }
        let masked: Vec<Option<String>> = values
            .into_iter()
            .zip(&masks)
            .map(|(v, m)| match (v, m) {
                (None, _) => None,
                (Some(_), Some(Mask::Null)) => None,
                (Some(v), Some(Mask::Hash)) => {
                    let mut h = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
                    h.update(v.as_bytes());
                    Some(hex::encode(h.finalize().into_bytes()))
                }
                (Some(v), Some(Mask::Partial)) => Some(partial(&v)),
                (Some(v), None) => Some(v),
            })
            .collect();
        if opts.jsonl {
            let obj: serde_json::Map<String, serde_json::Value> =
                columns.iter().cloned().zip(masked.into_iter().map(|v| v.map(serde_json::Value::String).unwrap_or(serde_json::Value::Null))).collect();
            out.push_str(&serde_json::Value::Object(obj).to_string());
        } else {
            if !header_done {
                out.push_str(&columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
                out.push_str("\r\n");
                header_done = true;
            }
            out.push_str(&masked.iter().map(|v| v.as_deref().map(csv_field).unwrap_or_default()).collect::<Vec<_>>().join(","));
            out.push('\r');
        }
        out.push('\n');
        flush(&mut out, &mut chunks, &mut digest, &mut bytes, false)
    })
    .await?;
    if !opts.jsonl && !header_done {
        out.push_str(&columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    flush(&mut out, &mut chunks, &mut digest, &mut bytes, true)?;
    let plan: BTreeMap<String, Mask> = lineage.iter().zip(&masks).filter_map(|(c, m)| m.map(|m| (c.name.clone(), m))).collect();
    let export = NewExport {
        target_seq,
        format: if opts.jsonl { "jsonl" } else { "csv" }.into(),
        row_count: rows as i64,
        bytes: bytes as i64,
        sha256: hex::encode(digest.finalize()),
        masked: serde_json::to_string(&plan).unwrap_or_default(),
        chunks,
    };
    Ok((export, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_directive_line() {
        let (o, sql) = options("-- sluice:export format=jsonl limit=50 mask=users.name:hash,note:null\nSELECT * FROM users;\n").unwrap();
        assert_eq!((o.jsonl, o.limit), (true, 50));
        assert_eq!(o.masks, [("users.name".to_string(), Mask::Hash), ("note".to_string(), Mask::Null)]);
        assert_eq!(sql, "SELECT * FROM users");
        assert!(options("-- sluice:export limit=0\nSELECT 1").unwrap_err().contains("limit"));
        assert!(options("-- sluice:export mask=a:shred\nSELECT 1").unwrap_err().contains("shred"));
    }

    #[test]
    fn masks_hide_all_but_a_hint() {
        assert_eq!(partial("alice@example.com"), "a***@example.com");
        assert_eq!(partial("13812345678"), "1********78");
        assert_eq!(partial("ab"), "**");
        let col = OutputColumn { name: "x".into(), sources: ["users.email".to_string(), "users.password_hash".to_string()].into() };
        assert_eq!(mask_for(&col, &[]), Some(Mask::Null), "the strongest rule wins");
    }
}
