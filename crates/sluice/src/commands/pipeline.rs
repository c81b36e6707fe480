//! `sluice pipeline create|list|show|start|stop|remove`: pipelines run by a server.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::instance::urlencode;
use super::{print_json, print_table};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct PipelineCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: PipelineAction,
}

#[derive(Debug, Subcommand)]
pub enum PipelineAction {
    /// Send a pipeline file to the server and start it (unless --stopped).
    Create {
        name: String,
        /// The pipeline file (TOML); `url = "instance:NAME"` uses a registered instance.
        file: PathBuf,
        #[arg(long)]
        stopped: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
    },
    Start {
        id: String,
    },
    Stop {
        id: String,
    },
    Remove {
        id: String,
    },
}

pub async fn run(cmd: PipelineCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        PipelineAction::Create { name, file, stopped } => {
            let spec = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let p: Value = c.call(Method::POST, "/api/v1/pipelines", Some(json!({ "name": name, "spec": spec, "start": !stopped }))).await?;
            println!("created pipeline {} ({}), {}", name, s(&p["id"]), s(&p["status"]["state"]));
        }
        PipelineAction::List { json } => {
            let all: Value = c.call(Method::GET, "/api/v1/pipelines", None).await?;
            if json {
                print_json(&all);
            } else {
                let rows: Vec<Vec<String>> = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let st = &p["status"];
                        vec![
                            s(&p["name"]),
                            s(&st["state"]),
                            s(&st["events_in"]),
                            format!("{:.0}", st["events_per_s"].as_f64().unwrap_or(0.0)),
                            st["lag_seconds"].as_f64().map(|l| format!("{l:.1}")).unwrap_or("-".into()),
                            s(&st["last_error"]),
                            s(&p["id"]),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "STATE", "EVENTS", "EVENTS/S", "LAG S", "LAST ERROR", "ID"], &rows);
            }
        }
        PipelineAction::Show { id } => print_json(&c.call(Method::GET, &format!("/api/v1/pipelines/{}", urlencode(&id)), None).await?),
        PipelineAction::Start { id } => {
            let p: Value = c.call(Method::POST, &format!("/api/v1/pipelines/{}/start", urlencode(&id)), None).await?;
            println!("{}: {}", id, s(&p["status"]["state"]));
        }
        PipelineAction::Stop { id } => {
            let p: Value = c.call(Method::POST, &format!("/api/v1/pipelines/{}/stop", urlencode(&id)), None).await?;
            println!("{}: {}", id, s(&p["status"]["state"]));
        }
        PipelineAction::Remove { id } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/pipelines/{}", urlencode(&id))).await?;
            println!("removed {id}");
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
