//! `sluice ticket …`, `sluice project …`, `sluice flow …`: change tickets on a running server. Every action
//! first reads the ticket and names the revision it read, so an action never applies to a version of the
//! ticket its author has not seen.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::instance::urlencode;
use super::{print_json, print_table, write_private};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct TicketCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: TicketAction,
}

#[derive(Debug, Subcommand)]
pub enum TicketAction {
    /// Create a ticket from a SQL file and submit it to review (unless --draft).
    Create {
        #[arg(long)]
        project: String,
        /// Target instance (repeat for several); each gets the same statements.
        #[arg(long = "instance", required = true)]
        instances: Vec<String>,
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        file: PathBuf,
        /// ddl, dml, data_export, redis_command.
        #[arg(long, default_value = "dml")]
        kind: String,
        /// dry_run, direct, backup, batched (data exports and Redis tickets: direct, dry_run, backup).
        #[arg(long, default_value = "direct")]
        mode: String,
        /// Default: the file name.
        #[arg(long)]
        title: Option<String>,
        /// When to run: an RFC 3339 time (2026-12-24T02:00:00Z).
        #[arg(long)]
        at: Option<String>,
        /// Keep it a draft (do not submit).
        #[arg(long)]
        draft: bool,
    },
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The ticket with its findings, approvals and history.
    Show {
        id: String,
    },
    Submit {
        id: String,
    },
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Accept the review's error findings (owner or dba of the project).
    Override {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Comment {
        id: String,
        text: String,
    },
    /// Run an approved ticket now, or schedule it when its time is ahead (owner or dba of the project).
    Run {
        id: String,
        /// Wait until it ends, showing its progress (a bar on a terminal, nothing otherwise).
        #[arg(long)]
        wait: bool,
    },
    /// Make the rollback ticket of a done or failed backup-mode ticket (it then goes through approval).
    Rollback {
        id: String,
        /// The target to undo, when several ran in backup mode.
        #[arg(long)]
        target: Option<i64>,
        /// Overwrite rows changed since the ticket ran instead of refusing them.
        #[arg(long)]
        force: bool,
    },
    /// Download a done data export's file (through a single-use link made for you).
    Export {
        id: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        target: Option<i64>,
    },
}

#[derive(Debug, Args)]
pub struct ProjectCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: ProjectAction,
}

#[derive(Debug, Subcommand)]
pub enum ProjectAction {
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    /// Add a member or change their role: owner, dba, developer, approver, viewer.
    AddMember {
        project: String,
        user: String,
        role: String,
    },
    RemoveMember {
        project: String,
        user: String,
    },
    AddInstance {
        project: String,
        instance: String,
    },
}

#[derive(Debug, Args)]
pub struct FlowCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: FlowAction,
}

#[derive(Debug, Subcommand)]
pub enum FlowAction {
    /// Add a flow from a JSON file (see docs/tickets.md).
    Create {
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

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        o => o.to_string(),
    }
}

async fn revision(c: &Client, id: &str) -> Result<i64> {
    let t: Value = c.call(Method::GET, &format!("/api/v1/tickets/{}", urlencode(id)), None).await?;
    t["revision"].as_i64().context("the server's ticket has no revision")
}

fn summary(t: &Value) -> String {
    let errors: i64 = t["reviews"].as_array().into_iter().flatten().filter_map(|r| r["errors"].as_i64()).sum();
    let warnings: i64 = t["reviews"].as_array().into_iter().flatten().filter_map(|r| r["warnings"].as_i64()).sum();
    format!("ticket {} is {} (revision {}; review: {errors} error(s), {warnings} warning(s))", s(&t["id"]), s(&t["state"]), s(&t["revision"]))
}

pub async fn run_ticket(cmd: TicketCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    let act = async |id: &str, what: &str, reason: Option<String>| -> Result<Value> {
        let rev = revision(&c, id).await?;
        c.call(Method::POST, &format!("/api/v1/tickets/{}/{what}", urlencode(id)), Some(json!({ "revision": rev, "reason": reason }))).await
    };
    match cmd.action {
        TicketAction::Create { project, instances, db, file, kind, mode, title, at, draft } => {
            let statements = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let run_at = match at {
                None => None,
                Some(t) => {
                    let when = humantime::parse_rfc3339_weak(&t).with_context(|| format!("--at `{t}` is not a time like 2026-12-24T02:00:00Z"))?;
                    Some(when.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
                }
            };
            let title = title.unwrap_or_else(|| file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let targets: Vec<Value> = instances.iter().map(|i| json!({ "instance": i, "database": db })).collect();
            let body =
                json!({ "project": project, "kind": kind, "mode": mode, "title": title, "statements": statements, "targets": targets, "run_at": run_at });
            let t: Value = c.call(Method::POST, "/api/v1/tickets", Some(body)).await?;
            let id = s(&t["id"]);
            if draft {
                println!("{}", summary(&t));
                return Ok(0);
            }
            let t: Value = c.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(json!({ "revision": t["revision"] }))).await?;
            println!("{}", summary(&t));
        }
        TicketAction::List { state, project, json } => {
            let mut q = Vec::new();
            if let Some(st) = state {
                q.push(format!("state={}", urlencode(&st)));
            }
            if let Some(p) = project {
                let p: Value = c.call(Method::GET, &format!("/api/v1/projects/{}", urlencode(&p)), None).await?;
                q.push(format!("project={}", urlencode(&s(&p["id"]))));
            }
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut query = q.clone();
                query.push("limit=200".into());
                if let Some(a) = &after {
                    query.push(format!("after={}", urlencode(a)));
                }
                let page: Value = c.call(Method::GET, &format!("/api/v1/tickets?{}", query.join("&")), None).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_after"].as_str() {
                    Some(a) => after = Some(a.to_string()),
                    None => break,
                }
            }
            if json {
                print_json(&Value::Array(items));
            } else {
                let rows: Vec<Vec<String>> =
                    items.iter().map(|t| vec![s(&t["id"]), s(&t["state"]), s(&t["kind"]), s(&t["mode"]), s(&t["creator"]), s(&t["title"])]).collect();
                print_table(&["ID", "STATE", "KIND", "MODE", "CREATOR", "TITLE"], &rows);
            }
        }
        TicketAction::Show { id } => print_json(&c.call(Method::GET, &format!("/api/v1/tickets/{}", urlencode(&id)), None).await?),
        TicketAction::Submit { id } => println!("{}", summary(&act(&id, "submit", None).await?)),
        TicketAction::Approve { id, comment } => println!("{}", summary(&act(&id, "approve", comment).await?)),
        TicketAction::Reject { id, reason } => println!("{}", summary(&act(&id, "reject", Some(reason)).await?)),
        TicketAction::Cancel { id, reason } => println!("{}", summary(&act(&id, "cancel", Some(reason)).await?)),
        TicketAction::Override { id, reason } => println!("{}", summary(&act(&id, "override", Some(reason)).await?)),
        TicketAction::Run { id, wait } => {
            let t = act(&id, "run", None).await?;
            println!("{}", summary(&t));
            if wait && t["state"] == "running" {
                let t = wait_for(&c, &id).await?;
                println!("{}", summary(&t));
                for j in t["jobs"].as_array().into_iter().flatten() {
                    println!("  target {}: {} — {}", s(&j["target_seq"]), s(&j["state"]), s(&j["outcome"]));
                }
                if t["state"] != "done" {
                    return Ok(1);
                }
            }
        }
        TicketAction::Rollback { id, target, force } => {
            let t: Value =
                c.call(Method::POST, &format!("/api/v1/tickets/{}/rollback", urlencode(&id)), Some(json!({ "target": target, "force": force }))).await?;
            println!("{} (rollback of {id})", summary(&t));
        }
        TicketAction::Export { id, out, target } => {
            let link: Value = c.call(Method::POST, &format!("/api/v1/tickets/{}/export-link", urlencode(&id)), Some(json!({ "target": target }))).await?;
            let (body, headers) = c.download(&s(&link["url"])).await?;
            let want = headers.get("x-sluice-export-sha256").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let got = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&body))
            };
            if want != got {
                bail!("the download does not match the export's SHA-256 ({got} ≠ {want}); nothing written");
            }
            write_private(&out, &body)?;
            println!("wrote {} ({} rows, {} bytes, sha256 {got})", out.display(), s(&link["export"]["row_count"]), body.len());
        }
        TicketAction::Comment { id, text } => {
            c.call_no_content(Method::POST, &format!("/api/v1/tickets/{}/comments", urlencode(&id)), json!({ "text": text })).await?;
            println!("commented on {id}");
        }
    }
    Ok(0)
}

/// Polls the ticket until it leaves `running`, showing the first job's progress.
async fn wait_for(c: &Client, id: &str) -> Result<Value> {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    loop {
        let t: Value = c.call(Method::GET, &format!("/api/v1/tickets/{}", urlencode(id)), None).await?;
        if t["state"] != "running" {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Ok(t);
        }
        if let Some(b) = &bar {
            let progress = t["jobs"].as_array().and_then(|j| j.last()).map(|j| s(&j["outcome"])).filter(|o| !o.is_empty()).unwrap_or_else(|| "running".into());
            b.set_message(progress);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

pub async fn run_project(cmd: ProjectCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        ProjectAction::Create { name, description } => {
            let p: Value = c.call(Method::POST, "/api/v1/projects", Some(json!({ "name": name, "description": description }))).await?;
            println!("created project {} ({})", s(&p["name"]), s(&p["id"]));
        }
        ProjectAction::List => {
            let all: Value = c.call(Method::GET, "/api/v1/projects", None).await?;
            let rows: Vec<Vec<String>> = all.as_array().into_iter().flatten().map(|p| vec![s(&p["name"]), s(&p["description"]), s(&p["id"])]).collect();
            print_table(&["NAME", "DESCRIPTION", "ID"], &rows);
        }
        ProjectAction::Show { name } => print_json(&c.call(Method::GET, &format!("/api/v1/projects/{}", urlencode(&name)), None).await?),
        ProjectAction::AddMember { project, user, role } => {
            c.call_no_content(Method::PUT, &format!("/api/v1/projects/{}/members/{}", urlencode(&project), urlencode(&user)), json!({ "role": role })).await?;
            println!("{user} is {role} in {project}");
        }
        ProjectAction::RemoveMember { project, user } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/projects/{}/members/{}", urlencode(&project), urlencode(&user))).await?;
            println!("{user} removed from {project}");
        }
        ProjectAction::AddInstance { project, instance } => {
            c.call_no_content(Method::POST, &format!("/api/v1/projects/{}/instances", urlencode(&project)), json!({ "instance": instance })).await?;
            println!("{instance} is in {project}");
        }
    }
    Ok(0)
}

pub async fn run_flow(cmd: FlowCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        FlowAction::Create { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let Ok(body) = serde_json::from_str::<Value>(&text) else { bail!("{} is not JSON", file.display()) };
            let f: Value = c.call(Method::POST, "/api/v1/flows", Some(body)).await?;
            println!("created flow {} ({})", s(&f["name"]), s(&f["id"]));
        }
        FlowAction::List => {
            let all: Value = c.call(Method::GET, "/api/v1/flows", None).await?;
            let rows: Vec<Vec<String>> = all
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| vec![s(&f["priority"]), s(&f["name"]), f["definition"]["stages"].as_array().map(|a| a.len()).unwrap_or(0).to_string(), s(&f["id"])])
                .collect();
            print_table(&["PRIORITY", "NAME", "STAGES", "ID"], &rows);
        }
        FlowAction::Show { name } => print_json(&c.call(Method::GET, &format!("/api/v1/flows/{}", urlencode(&name)), None).await?),
        FlowAction::Remove { name } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/flows/{}", urlencode(&name))).await?;
            println!("removed flow {name}");
        }
    }
    Ok(0)
}
