//! `sluice backup …`: repositories, policies, the catalog, backing up and verifying now (with progress),
//! and — without any server — exporting a repository's keys and extracting a backup with them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_store::Store;

use super::instance::urlencode;
use super::{print_json, print_table, write_private};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct BackupCmd {
    #[command(subcommand)]
    pub action: BackupAction,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Backup repositories (admin): where backups go.
    Repo {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        action: RepoAction,
    },
    /// Backup policies: what, when, where, how long.
    Policy {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Back up an instance now, showing progress until it (and its verification) ends.
    Run {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        instance: String,
        /// Use this policy's repository and settings …
        #[arg(long)]
        policy: Option<String>,
        /// … or this repository with the defaults.
        #[arg(long)]
        repository: Option<String>,
        /// Only what changed since the newest backup of the chain (physical MariaDB/MySQL backups; a full
        /// when there is nothing to build on).
        #[arg(long, conflicts_with = "differential")]
        incremental: bool,
        /// Only what changed since the newest full (physical backups).
        #[arg(long)]
        differential: bool,
        /// Return once queued.
        #[arg(long)]
        no_wait: bool,
    },
    /// The catalog, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One backup with its manifest.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Restore a backup into a scratch server and check it (rows, engine checks); waits for the result.
    Verify {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Keep a backup whatever retention says.
    Pin {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Let retention decide about a backup again.
    Unpin {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Delete a backup's files and catalog entry.
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// A repository's data keys, read from the store on the server's machine (not through the API).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Restore on this machine, from the server's store: a physical backup (PostgreSQL base plus WAL, or a
    /// mariadb-backup chain plus binlogs) into a new data directory, or a logical backup (plus binlogs) into
    /// a server that is not a registered instance; the whole backup, or one table. Restores into registered
    /// instances are restore tickets.
    Restore {
        #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
        data_dir: PathBuf,
        #[arg(long, env = "SLUICE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// The instance whose backups to restore (id or name).
        #[arg(long)]
        instance: String,
        /// Its backups under this policy (whose logs are replayed).
        #[arg(long)]
        policy: Option<String>,
        /// Exactly this backup, no logs replayed.
        #[arg(long, conflicts_with_all = ["at", "gtid"])]
        backup: Option<String>,
        /// The instant to restore to, with its offset: 2026-12-04T17:20:00Z or 2026-12-04T18:20:00+01:00.
        #[arg(long)]
        at: Option<String>,
        /// MariaDB: up to and including this GTID.
        #[arg(long)]
        gtid: Option<String>,
        /// One table: `db.table` (MariaDB) or `schema.table` (PostgreSQL).
        #[arg(long)]
        table: Option<String>,
        /// One database of a MariaDB logical backup (tables, views, routines, triggers, events).
        #[arg(long, conflicts_with = "table")]
        database: Option<String>,
        /// The table's new name at the target (`db.table` or `table`), or the database's.
        #[arg(long = "as")]
        rename: Option<String>,
        /// A new data directory (physical backups, PostgreSQL or MariaDB).
        #[arg(long, conflicts_with = "to")]
        to_datadir: Option<PathBuf>,
        /// The target server, as a JSON or TOML file: host, port, user, password, and database (PostgreSQL).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Write a backup's files, decrypted and checked, to a folder — with only the repository and an
    /// exported key file: no server, no store.
    Extract {
        /// The repository's configuration (JSON or TOML, as registered).
        #[arg(long)]
        repository_config: PathBuf,
        /// A key file from `sluice backup key export`.
        #[arg(long)]
        key_file: PathBuf,
        /// The backup's id.
        #[arg(long)]
        backup: String,
        /// Folder to write into (created; files are written 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoAction {
    /// Register a repository from a JSON or TOML file (secrets stay off the command line).
    Add {
        name: String,
        config: PathBuf,
    },
    List,
    Remove {
        name: String,
    },
    /// New backups get a new data key; old ones keep theirs.
    RotateKey {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Create a policy from a JSON or TOML file (fields: docs/backup.md).
    Create {
        file: PathBuf,
    },
    /// Replace a policy from a file.
    Update {
        name: String,
        file: PathBuf,
    },
    List,
    Show {
        name: String,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Write every key of a repository (current and retired) to a file only its owner can read.
    Export {
        #[arg(long)]
        repository: String,
        /// The server's data dir (its store and master key).
        #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
        data_dir: PathBuf,
        /// postgres://… when the server's store is PostgreSQL.
        #[arg(long, env = "SLUICE_STORE", hide_env_values = true)]
        store: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

/// A JSON or TOML file as JSON.
pub(crate) fn read_doc(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let v: toml::Value = toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
        Ok(serde_json::to_value(v)?)
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        o => o.to_string(),
    }
}

fn bytes(v: &Value) -> String {
    v.as_i64().map(|n| indicatif::HumanBytes(n as u64).to_string()).unwrap_or_else(|| "-".into())
}

fn when(v: &Value) -> String {
    v.as_i64()
        .map(|ms| humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)).to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn run(cmd: BackupCmd) -> Result<i32> {
    match cmd.action {
        BackupAction::Repo { server, action } => {
            let c = Client::new(&server)?;
            match action {
                RepoAction::Add { name, config } => {
                    let r: Value = c.call(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": name, "config": read_doc(&config)? }))).await?;
                    println!("registered repository {} ({}, {})", s(&r["name"]), s(&r["kind"]), s(&r["id"]));
                    println!("export its key now and keep it apart from the repository: sluice backup key export --repository {name} --out KEYFILE");
                }
                RepoAction::List => {
                    let all: Value = c.call(Method::GET, "/api/v1/backup/repositories", None).await?;
                    let rows = all.as_array().into_iter().flatten().map(|r| vec![s(&r["name"]), s(&r["kind"]), s(&r["id"])]).collect::<Vec<_>>();
                    print_table(&["NAME", "KIND", "ID"], &rows);
                }
                RepoAction::Remove { name } => {
                    c.call_empty(Method::DELETE, &format!("/api/v1/backup/repositories/{}", urlencode(&name))).await?;
                    println!("removed {name}");
                }
                RepoAction::RotateKey { name } => {
                    let _: Value = c.call(Method::POST, &format!("/api/v1/backup/repositories/{}/rotate-key", urlencode(&name)), None).await?;
                    println!("new backups in {name} use a new key; export the keys again");
                }
            }
        }
        BackupAction::Policy { server, action } => {
            let c = Client::new(&server)?;
            match action {
                PolicyAction::Create { file } => {
                    let p: Value = c.call(Method::POST, "/api/v1/backup/policies", Some(read_doc(&file)?)).await?;
                    println!("created policy {} ({})", s(&p["name"]), s(&p["id"]));
                }
                PolicyAction::Update { name, file } => {
                    let p: Value = c.call(Method::PUT, &format!("/api/v1/backup/policies/{}", urlencode(&name)), Some(read_doc(&file)?)).await?;
                    println!("updated policy {}", s(&p["name"]));
                }
                PolicyAction::List => {
                    let all: Value = c.call(Method::GET, "/api/v1/backup/policies", None).await?;
                    let rows = all
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let sp = &p["spec"];
                            let target = if sp["instance"].is_null() { format!("selector {}", sp["selector"]) } else { s(&sp["instance"]) };
                            vec![
                                s(&p["name"]),
                                target,
                                s(&sp["full"]),
                                s(&sp["timezone"]),
                                format!("{} fulls / {} d", sp["retention"]["fulls"], sp["retention"]["recovery_window_days"]),
                            ]
                        })
                        .collect::<Vec<_>>();
                    print_table(&["NAME", "INSTANCES", "FULL", "ZONE", "RETENTION"], &rows);
                }
                PolicyAction::Show { name } => print_json(&c.call(Method::GET, &format!("/api/v1/backup/policies/{}", urlencode(&name)), None).await?),
                PolicyAction::Remove { name } => {
                    c.call_empty(Method::DELETE, &format!("/api/v1/backup/policies/{}", urlencode(&name))).await?;
                    println!("removed {name}");
                }
            }
        }
        BackupAction::Run { server, instance, policy, repository, incremental, differential, no_wait } => {
            let c = Client::new(&server)?;
            let level = match (incremental, differential) {
                (true, _) => "incremental",
                (_, true) => "differential",
                _ => "full",
            };
            let body = json!({ "instance": instance, "policy": policy, "repository": repository, "level": level });
            let r: Value = c.call(Method::POST, "/api/v1/backups", Some(body)).await?;
            let id = s(&r["id"]);
            println!("backup {id} queued");
            if no_wait {
                return Ok(0);
            }
            let done = follow(&c, &id).await?;
            return Ok(report(&done));
        }
        BackupAction::List { server, instance, policy, state, json } => {
            let c = Client::new(&server)?;
            let mut q = vec!["limit=100".to_string()];
            for (k, v) in [("instance", instance), ("policy", policy), ("state", state)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let all: Value = c.call(Method::GET, &format!("/api/v1/backups?{}", q.join("&")), None).await?;
            if json {
                print_json(&all);
            } else {
                let rows = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| {
                        let secs = match (b["started_at"].as_i64(), b["finished_at"].as_i64()) {
                            (Some(a), Some(z)) => format!("{:.1}", (z - a) as f64 / 1000.0),
                            _ => "-".into(),
                        };
                        vec![
                            s(&b["id"]),
                            s(&b["state"]),
                            s(&b["verify_state"]),
                            match b["level"].as_str() {
                                Some("incremental") => format!("{} +incr", s(&b["method"])),
                                Some("differential") => format!("{} +diff", s(&b["method"])),
                                _ => s(&b["method"]),
                            },
                            when(&b["finished_at"]),
                            secs,
                            bytes(&b["stored_bytes"]),
                            s(&b["error"]),
                        ]
                    })
                    .collect::<Vec<_>>();
                print_table(&["ID", "STATE", "VERIFIED", "METHOD", "FINISHED", "SECONDS", "STORED", "ERROR"], &rows);
            }
        }
        BackupAction::Show { server, id } => print_json(&Client::new(&server)?.call(Method::GET, &format!("/api/v1/backups/{}", urlencode(&id)), None).await?),
        BackupAction::Verify { server, id, no_wait } => {
            let c = Client::new(&server)?;
            let _: Value = c.call(Method::POST, &format!("/api/v1/backups/{}/verify", urlencode(&id)), None).await?;
            println!("verification of {id} queued");
            if no_wait {
                return Ok(0);
            }
            let done = follow(&c, &id).await?;
            return Ok(report(&done));
        }
        BackupAction::Pin { server, id } => {
            let _: Value = Client::new(&server)?.call(Method::POST, &format!("/api/v1/backups/{}/pin", urlencode(&id)), None).await?;
            println!("{id} pinned");
        }
        BackupAction::Unpin { server, id } => {
            let _: Value = Client::new(&server)?.call(Method::POST, &format!("/api/v1/backups/{}/unpin", urlencode(&id)), None).await?;
            println!("{id} unpinned");
        }
        BackupAction::Delete { server, id } => {
            Client::new(&server)?.call_empty(Method::DELETE, &format!("/api/v1/backups/{}", urlencode(&id))).await?;
            println!("deleted {id}");
        }
        BackupAction::Key { action: KeyAction::Export { repository, data_dir, store, out } } => {
            export_keys(&repository, &data_dir, store.as_deref(), &out).await?
        }
        BackupAction::Extract { repository_config, key_file, backup, out } => extract(&repository_config, &key_file, &backup, &out).await?,
        BackupAction::Restore { data_dir, store, instance, policy, backup, at, gtid, table, database, rename, to_datadir, to } => {
            let r = RestoreArgs { instance, policy, backup, at, gtid, table, database, rename, to_datadir, to };
            restore_here(&data_dir, store.as_deref(), r).await?
        }
    }
    Ok(0)
}

/// Polls a backup until it and its verification stop moving, with a progress bar on a terminal.
async fn follow(c: &Client, id: &str) -> Result<Value> {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    loop {
        let b: Value = c.call(Method::GET, &format!("/api/v1/backups/{}", urlencode(id)), None).await?;
        let moving = matches!(b["state"].as_str(), Some("queued" | "running"))
            || matches!(b["verify_state"].as_str(), Some("queued" | "running" | "after") if b["state"] == "done");
        if !moving {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(b);
        }
        if let Some(bar) = &bar {
            let msg = match (b["state"].as_str(), b["verify_state"].as_str()) {
                (Some("queued"), _) => "queued".to_string(),
                (Some("running"), _) => format!(
                    "backing up: {} read, {} s",
                    bytes(&b["progress"]["bytes"]),
                    b["progress"]["seconds"].as_u64().map_or("-".to_string(), |n| n.to_string())
                ),
                (_, Some(v)) => format!("verification {v}"),
                _ => String::new(),
            };
            bar.set_message(msg);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Prints how a backup ended; the exit code is 0 only when it is done and (if verified) verified.
fn report(b: &Value) -> i32 {
    match b["state"].as_str() {
        Some("done") => {
            println!(
                "backup {} done: {} stored ({} before compression), verification {}",
                s(&b["id"]),
                bytes(&b["stored_bytes"]),
                bytes(&b["plain_bytes"]),
                s(&b["verify_state"])
            );
            if b["verify_state"] == "failed" {
                println!("verification failed: {}", s(&b["verify_error"]));
                return 1;
            }
            0
        }
        _ => {
            println!("backup {} {}: {}", s(&b["id"]), s(&b["state"]), s(&b["error"]));
            1
        }
    }
}

/// A key file: what `extract` (and docs/backup.md's recipe) needs besides the repository.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    repository: String,
    keys: Vec<KeyEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyEntry {
    id: String,
    /// 32 bytes, hex.
    key: String,
    created_at: i64,
    retired_at: Option<i64>,
}

async fn export_keys(repository: &str, data_dir: &Path, store: Option<&str>, out: &Path) -> Result<()> {
    if store.is_none() && !data_dir.join("sluice.db").exists() {
        bail!("no store at {}: pass --data-dir or --store", data_dir.join("sluice.db").display());
    }
    let opened = Store::open(crate::serve::store_options(data_dir, store, 2, false)).await?;
    let st = opened.store;
    let repo = st.get_repository(repository).await?;
    let mut keys = Vec::new();
    for (id, created_at, retired_at) in st.backup_keys(&repo.id).await? {
        let k = st.backup_key(&repo.id, &id).await?;
        keys.push(KeyEntry { id, key: hex::encode(k.expose()), created_at, retired_at });
    }
    st.close().await;
    let body = serde_json::to_vec_pretty(&KeyFile { repository: repo.name.clone(), keys })?;
    write_private(out, &body)?;
    println!("wrote the keys of repository {} to {} (mode 0600); keep it apart from the repository", repo.name, out.display());
    Ok(())
}

/// The keys of a key file, the newest (unretired) first: it seals; any of them opens.
pub(crate) fn keys_newest_first(key_file: &Path) -> Result<Vec<sluice_backup::DataKey>> {
    let mut keys: KeyFile = serde_json::from_slice(&std::fs::read(key_file).with_context(|| format!("cannot read {}", key_file.display()))?)
        .with_context(|| format!("{} is not a key file from `sluice backup key export`", key_file.display()))?;
    keys.keys.sort_by_key(|k| (k.retired_at.is_some(), std::cmp::Reverse(k.created_at)));
    keys.keys
        .iter()
        .map(|k| {
            let raw: [u8; 32] = hex::decode(&k.key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| format!("key {} in {} is not 32 hex bytes", k.id, key_file.display()))?;
            Ok(sluice_backup::DataKey::from_bytes(raw))
        })
        .collect()
}

async fn extract(config: &Path, key_file: &Path, id: &str, out: &Path) -> Result<()> {
    let cfg: sluice_backup::repository::RepositoryConfig =
        serde_json::from_value(read_doc(config)?).with_context(|| format!("{} is not a repository configuration", config.display()))?;
    let repo = sluice_backup::repository::Repository::new(&cfg).map_err(anyhow::Error::msg)?;
    let keys: KeyFile = serde_json::from_slice(&std::fs::read(key_file).with_context(|| format!("cannot read {}", key_file.display()))?)
        .with_context(|| format!("{} is not a key file from `sluice backup key export`", key_file.display()))?;
    let m = sluice_backup::repo::manifest(&repo, id).await.map_err(anyhow::Error::msg)?;
    let entry = keys
        .keys
        .iter()
        .find(|k| k.id == m.key_id)
        .with_context(|| format!("backup {id} is sealed with key {}, which {} does not hold", m.key_id, key_file.display()))?;
    let raw: [u8; 32] = hex::decode(&entry.key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("key {} in {} is not 32 hex bytes", entry.id, key_file.display()))?;
    let key = sluice_backup::DataKey::from_bytes(raw);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for f in &m.files {
        let plain = f.name.strip_suffix(".sealed").unwrap_or(&f.name);
        let path = out.join(plain);
        sluice_backup::repo::extract_file(&repo, &m, &f.name, &key, &path).await.map_err(anyhow::Error::msg)?;
        println!("{} ({} bytes, sha256 {} checked)", path.display(), f.plain_bytes, f.plain_sha256);
    }
    write_private(&out.join("manifest.json"), &serde_json::to_vec_pretty(&m)?)?;
    println!("backup {id} ({}) extracted; docs/backup.md says how to restore each kind by hand", m.kind);
    Ok(())
}

struct RestoreArgs {
    instance: String,
    policy: Option<String>,
    backup: Option<String>,
    at: Option<String>,
    gtid: Option<String>,
    table: Option<String>,
    database: Option<String>,
    rename: Option<String>,
    to_datadir: Option<PathBuf>,
    to: Option<PathBuf>,
}

/// `2026-12-04T17:20:00Z` → Unix ms; a time without its offset is refused (ambiguous around DST changes).
fn parse_instant(text: &str) -> Result<i64> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| anyhow::anyhow!("--at: `{text}` is not an instant with its offset (2026-12-04T17:20:00Z, or +01:00 for a zone's local time): {e}"))?;
    Ok(ts.as_millisecond())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    host: String,
    port: u16,
    user: String,
    #[serde(default)]
    password: String,
    database: Option<String>,
}

async fn restore_here(data_dir: &Path, store: Option<&str>, a: RestoreArgs) -> Result<()> {
    use sluice_control::backups::restore::{Destination, Point, choose_full, restore};
    if store.is_none() && !data_dir.join("sluice.db").exists() {
        bail!("no store at {}: pass --data-dir or --store", data_dir.join("sluice.db").display());
    }
    let point = match (&a.backup, &a.at, &a.gtid) {
        (Some(b), _, _) => Point::Backup(b.clone()),
        (None, Some(t), None) => Point::Time(parse_instant(t)?),
        (None, None, Some(g)) => Point::Gtid(g.clone()),
        (None, None, None) => Point::Latest,
        (None, Some(_), Some(_)) => bail!("give --at or --gtid, not both"),
    };
    let opened = Store::open(crate::serve::store_options(data_dir, store, 2, false)).await?;
    let st = opened.store;
    let inst = st.find_instance(&a.instance).await?;
    let policy_id = match &a.policy {
        Some(p) => Some(st.get_policy(p).await?.id),
        None => None,
    };
    let full = choose_full(&st, &inst.id, policy_id.as_deref(), &point).await.map_err(anyhow::Error::msg)?;
    let target: Option<TargetFile> = match &a.to {
        Some(f) => {
            Some(serde_json::from_value(read_doc(f)?).with_context(|| format!("{}: give host, port, user, password and (PostgreSQL) database", f.display()))?)
        }
        None => None,
    };
    if let Some(t) = &target {
        let registered = st.all_instances().await?.into_iter().find(|i| i.port == t.port && (i.host == t.host || (is_local(&i.host) && is_local(&t.host))));
        if let Some(i) = registered {
            bail!(
                "{}:{} is registered instance `{}`: restores into registered instances go through a restore ticket and its approvals, not this command",
                t.host,
                t.port,
                i.name
            );
        }
    }
    let scratch = data_dir.join("scratch");
    let egress = sluice_core::egress::EgressPolicy::default();
    println!("restoring from backup {} (finished {}, verification {})", full.id, when(&json!(full.finished_at)), full.verify_state);
    if a.rename.is_some() && a.table.is_none() && a.database.is_none() {
        bail!("--as renames a --table or a --database: name it too");
    }
    if let Some(db) = &a.database {
        let t = target.context("--database needs --to (the server to restore the database into)")?;
        let repo = sluice_control::backups::open_repository(&st, &full.repository_id, &egress).await.map_err(anyhow::Error::msg)?;
        let key = sluice_control::backups::data_key(&st, &full.repository_id, full.key_id.as_deref().unwrap_or_default()).await.map_err(anyhow::Error::msg)?;
        let server = sluice_backup::mariadb_dump::Server { host: t.host, port: t.port, socket: None, user: t.user, password: t.password };
        let rows = sluice_backup::table_restore::restore_mariadb_database(&repo, &full.id, &key, db, a.rename.as_deref(), &server, &scratch)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("restored database {db} as {} ({rows} rows, as in the backup's manifest)", a.rename.as_deref().unwrap_or(db));
        st.close().await;
        return Ok(());
    }
    if let Some(table) = &a.table {
        let (container, name) = table.split_once('.').with_context(|| format!("--table: `{table}` is not `db.table` / `schema.table`"))?;
        let (new_container, new_table) =
            match a.rename.as_deref().map(|r| r.split_once('.').map(|(c, t)| (Some(c.to_string()), t.to_string())).unwrap_or((None, r.to_string()))) {
                Some((c, t)) => (c, Some(t)),
                None => (None, None),
            };
        let pick = sluice_backup::table_restore::TablePick { container: container.into(), table: name.into(), new_container, new_table };
        let t = target.context("--table needs --to (the server to restore the table into)")?;
        let repo = sluice_control::backups::open_repository(&st, &full.repository_id, &egress).await.map_err(anyhow::Error::msg)?;
        let key = sluice_control::backups::data_key(&st, &full.repository_id, full.key_id.as_deref().unwrap_or_default()).await.map_err(anyhow::Error::msg)?;
        let rows = match inst.engine {
            sluice_core::Engine::Postgres => {
                let db = sluice_backup::pg_dump::Database {
                    host: t.host,
                    port: t.port,
                    user: t.user,
                    password: t.password,
                    dbname: t.database.unwrap_or_else(|| "postgres".into()),
                };
                sluice_backup::table_restore::restore_pg_table(&repo, &full.id, &key, &pick, &db, &scratch).await
            }
            _ => {
                let server = sluice_backup::mariadb_dump::Server { host: t.host, port: t.port, socket: None, user: t.user, password: t.password };
                sluice_backup::table_restore::restore_mariadb_table(&repo, &full.id, &key, &pick, &server, &scratch).await
            }
        }
        .map_err(anyhow::Error::msg)?;
        println!("restored {table} ({rows} rows, as in the backup's manifest)");
        st.close().await;
        return Ok(());
    }
    let to = match (a.to_datadir, target) {
        (Some(dir), None) => Destination::DataDir(dir),
        (None, Some(t)) if inst.engine == sluice_core::Engine::Postgres => Destination::PgDatabase(sluice_backup::pg_dump::Database {
            host: t.host,
            port: t.port,
            user: t.user,
            password: t.password,
            dbname: t.database.context("a PostgreSQL target names its (empty) database")?,
        }),
        (None, Some(t)) => {
            Destination::Mariadb(sluice_backup::mariadb_dump::Server { host: t.host, port: t.port, socket: None, user: t.user, password: t.password })
        }
        _ => bail!("say where to restore: --to-datadir DIR (physical backups) or --to FILE (a server)"),
    };
    let r = restore(&st, &egress, &scratch, &full, &point, &to).await.map_err(anyhow::Error::msg)?;
    st.close().await;
    println!("restored backup {}{}", r.backup, r.replayed.map(|x| format!("; {x}")).unwrap_or_default());
    Ok(())
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}
