//! `sluice instance add|list|show|check|remove`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::{print_json, print_table};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct InstanceCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: InstanceAction,
}

#[derive(Debug, Subcommand)]
pub enum InstanceAction {
    /// Register an instance.
    Add(Box<AddArgs>),
    /// List registered instances.
    List {
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        engine: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one instance (by id or name).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Connect to the instance and report version, latency and capabilities. Exits 1 when the check fails.
    Check {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an instance from the registry.
    Remove { id: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Unique name.
    pub name: String,
    /// mysql, mariadb, postgres or redis.
    #[arg(long)]
    pub engine: String,
    #[arg(long)]
    pub host: String,
    /// Defaults to the engine's port.
    #[arg(long)]
    pub port: Option<u32>,
    #[arg(long = "user")]
    pub username: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_env: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// disable, require or verify-full.
    #[arg(long)]
    pub tls_mode: Option<String>,
    #[arg(long)]
    pub database: Option<String>,
    /// prod, staging, test or dev.
    #[arg(long = "env", default_value = "dev")]
    pub environment: String,
    /// key=value, repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    #[arg(long)]
    pub owner: Option<String>,
}

pub async fn run(cmd: InstanceCmd) -> Result<i32> {
    let client = Client::new(&cmd.server)?;
    match cmd.action {
        InstanceAction::Add(a) => {
            let password = match (&a.password_env, a.password_stdin) {
                (Some(var), _) => Some(std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?),
                (None, true) => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).context("cannot read the password from stdin")?;
                    Some(s.lines().next().unwrap_or("").to_string())
                }
                (None, false) => None,
            };
            let mut labels = serde_json::Map::new();
            for l in &a.labels {
                let Some((k, v)) = l.split_once('=') else { bail!("--label {l}: expected key=value") };
                labels.insert(k.to_string(), Value::String(v.to_string()));
            }
            let mut body = json!({ "name": a.name, "engine": a.engine, "host": a.host, "environment": a.environment, "labels": labels });
            for (k, v) in [("username", a.username), ("password", password), ("tls_mode", a.tls_mode), ("database", a.database), ("owner", a.owner)] {
                if let Some(v) = v {
                    body[k] = Value::String(v);
                }
            }
            if let Some(p) = a.port {
                body["port"] = json!(p);
            }
            let rec: Value = client.call(Method::POST, "/api/v1/instances", Some(body)).await?;
            println!("registered {} ({})", rec["name"].as_str().unwrap_or(""), rec["id"].as_str().unwrap_or(""));
            Ok(0)
        }
        InstanceAction::List { env, engine, json } => {
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut q = vec![("limit".to_string(), "500".to_string())];
                if let Some(e) = &env {
                    q.push(("environment".into(), e.clone()));
                }
                if let Some(e) = &engine {
                    q.push(("engine".into(), e.clone()));
                }
                if let Some(a) = &after {
                    q.push(("after".into(), a.clone()));
                }
                let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
                let page: Value = client.call(Method::GET, &format!("/api/v1/instances?{}", qs.join("&")), None).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_after"].as_str() {
                    Some(a) => after = Some(a.to_string()),
                    None => break,
                }
            }
            if json {
                print_json(&Value::Array(items));
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = items.iter().map(row).collect();
            print_table(&["NAME", "ENGINE", "ADDRESS", "ENV", "LAST CHECK", "ID"], &rows);
            Ok(0)
        }
        InstanceAction::Show { id, json } => {
            let rec: Value = client.call(Method::GET, &format!("/api/v1/instances/{}", urlencode(&id)), None).await?;
            if json {
                print_json(&rec);
            } else {
                for k in ["id", "name", "engine", "host", "port", "username", "has_password", "tls_mode", "database", "environment", "labels", "owner"] {
                    println!("{k:<13} {}", show(&rec[k]));
                }
                println!("{:<13} {}", "last_check", last_check(&rec["last_check"]));
            }
            Ok(0)
        }
        InstanceAction::Check { id, json } => {
            let rep: Value = client.call(Method::POST, &format!("/api/v1/instances/{}/check", urlencode(&id)), None).await?;
            if json {
                print_json(&rep);
            } else if rep["ok"] == true {
                println!(
                    "ok: {} {}, connect {} ms, round trip {} ms",
                    rep["engine"].as_str().unwrap_or(""),
                    show(&rep["server_version"]),
                    show(&rep["connect_ms"]),
                    show(&rep["latency_ms"])
                );
                if let Some(caps) = rep["capabilities"].as_object() {
                    for (k, v) in caps {
                        println!("  {k:<24} {}", show(v));
                    }
                }
            } else {
                println!("failed: {}: {}", show(&rep["error"]["kind"]), show(&rep["error"]["message"]));
            }
            Ok(if rep["ok"] == true { 0 } else { 1 })
        }
        InstanceAction::Remove { id } => {
            client.call_empty(Method::DELETE, &format!("/api/v1/instances/{}", urlencode(&id))).await?;
            println!("removed {id}");
            Ok(0)
        }
    }
}

fn row(i: &Value) -> Vec<String> {
    vec![
        show(&i["name"]),
        show(&i["engine"]),
        format!("{}:{}", show(&i["host"]), show(&i["port"])),
        show(&i["environment"]),
        last_check(&i["last_check"]),
        show(&i["id"]),
    ]
}

fn last_check(c: &Value) -> String {
    if c.is_null() {
        return "never".into();
    }
    if c["ok"] == true { format!("ok ({} ms)", show(&c["latency_ms"])) } else { format!("failed: {}", show(&c["error"]["kind"])) }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a path segment or query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
