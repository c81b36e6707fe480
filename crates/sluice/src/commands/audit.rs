//! `sluice audit verify` (reads the store directly, so it works even when the server is down or not
//! trusted) and `sluice audit list` (through the API).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use sluice_store::Store;

use super::{print_json, print_table};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct AuditCmd {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain of the audit log in the store; exit 1 when it is broken.
    Verify {
        /// The server's data directory (SQLite store and master key).
        #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
        data_dir: PathBuf,
        /// A postgres://… store instead of the SQLite file in the data directory.
        #[arg(long, env = "SLUICE_STORE")]
        store: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show recent audit entries from a running server.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: AuditCmd) -> Result<i32> {
    match cmd.action {
        AuditAction::Verify { data_dir, store, json } => {
            if store.is_none() && !data_dir.join("sluice.db").exists() {
                anyhow::bail!("no store at {}: pass --data-dir or --store", data_dir.join("sluice.db").display());
            }
            let opened = Store::open(crate::serve::store_options(&data_dir, store.as_deref(), 2, false)).await?;
            let report = opened.store.verify_audit().await?;
            opened.store.close().await;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else if report.ok() {
                println!("audit log intact: {} entries, head {} {}", report.entries, report.head_seq, report.head_hash);
            } else {
                println!("audit log BROKEN: {} entries checked, {} problem(s):", report.entries, report.breaks.len());
                for b in &report.breaks {
                    println!("  entry {}: {}", b.seq, b.problem);
                }
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
        AuditAction::List { server, limit, json } => {
            let c = Client::new(&server)?;
            let page: Value = c.call(Method::GET, &format!("/api/v1/audit?limit={limit}"), None).await?;
            if json {
                print_json(&page);
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let at = e["at"]
                        .as_i64()
                        .map(|ms| humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)).to_string())
                        .unwrap_or_default();
                    vec![e["seq"].to_string(), at, txt(&e["actor"]), txt(&e["action"]), txt(&e["target"]), txt(&e["outcome"])]
                })
                .collect();
            print_table(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME"], &rows);
            Ok(0)
        }
    }
}

fn txt(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}
