//! `sluice user add|list|remove` and `sluice token create|list|revoke`.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::instance::urlencode;
use super::{print_json, print_table};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct UserCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: UserAction,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user; `--token` also issues its first API token and prints it once.
    Add {
        name: String,
        /// admin, dba, developer, approver, auditor or viewer.
        #[arg(long)]
        role: String,
        /// Also create a token with this name.
        #[arg(long = "with-token")]
        with_token: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a user and revoke its tokens.
    Remove { id: String },
}

#[derive(Debug, Args)]
pub struct TokenCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Issue a token for a user (printed once).
    Create {
        /// The user's id.
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// e.g. 30d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
    },
    List {
        #[arg(long)]
        user: Option<String>,
    },
    Revoke {
        id: String,
    },
}

pub async fn run_user(cmd: UserCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        UserAction::Add { name, role, with_token } => {
            let u: Value = c.call(Method::POST, "/api/v1/users", Some(json!({ "name": name, "role": role }))).await?;
            println!("created user {} ({})", name, u["id"].as_str().unwrap_or(""));
            if let Some(t) = with_token {
                let tok: Value =
                    c.call(Method::POST, &format!("/api/v1/users/{}/tokens", urlencode(u["id"].as_str().unwrap_or(""))), Some(json!({ "name": t }))).await?;
                println!("token (shown once): {}", tok["token"].as_str().unwrap_or(""));
            }
        }
        UserAction::List { json } => {
            let users: Value = c.call(Method::GET, "/api/v1/users", None).await?;
            if json {
                print_json(&users);
            } else {
                let rows: Vec<Vec<String>> = users.as_array().into_iter().flatten().map(|u| vec![s(&u["name"]), s(&u["role"]), s(&u["id"])]).collect();
                print_table(&["NAME", "ROLE", "ID"], &rows);
            }
        }
        UserAction::Remove { id } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/users/{}", urlencode(&id))).await?;
            println!("removed user {id}");
        }
    }
    Ok(0)
}

pub async fn run_token(cmd: TokenCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        TokenAction::Create { user, name, expires_in } => {
            let mut body = json!({ "name": name });
            if let Some(e) = expires_in {
                body["expires_in"] = Value::String(e);
            }
            let tok: Value = c.call(Method::POST, &format!("/api/v1/users/{}/tokens", urlencode(&user)), Some(body)).await?;
            println!("{}", tok["token"].as_str().unwrap_or(""));
        }
        TokenAction::List { user } => {
            let path = match user {
                Some(u) => format!("/api/v1/tokens?user_id={}", urlencode(&u)),
                None => "/api/v1/tokens".into(),
            };
            let toks: Value = c.call(Method::GET, &path, None).await?;
            let rows: Vec<Vec<String>> =
                toks.as_array().into_iter().flatten().map(|t| vec![s(&t["name"]), s(&t["user_id"]), s(&t["expires_at"]), s(&t["id"])]).collect();
            print_table(&["NAME", "USER", "EXPIRES", "ID"], &rows);
        }
        TokenAction::Revoke { id } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/tokens/{}", urlencode(&id))).await?;
            println!("revoked {id}");
        }
    }
    Ok(0)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        o => o.to_string(),
    }
}
