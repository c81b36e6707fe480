//! A small client for the server's API, used by the `instance`, `user`, `token` and `audit` subcommands.

use anyhow::{Context, Result, anyhow};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

#[derive(Debug, clap::Args, Clone)]
pub struct ServerArgs {
    /// The Sluice server's URL.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:7700", global = true)]
    pub server: String,
    /// API token (prefer the SLUICE_TOKEN variable: arguments are visible in the process list).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Result<Self> {
        let token = args.token.clone().ok_or_else(|| anyhow!("no API token: set SLUICE_TOKEN or pass --token"))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("sluice-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build HTTP client")?;
        Ok(Self { http, base: args.server.trim_end_matches('/').to_string(), token })
    }

    /// Sends a request and decodes the JSON answer; API errors become readable messages.
    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<T> {
        let resp = self.send(method, path, body).await?;
        resp.json().await.context("the server's answer is not the expected JSON")
    }

    /// Like `call` for answers without a body (204).
    pub async fn call_empty(&self, method: Method, path: &str) -> Result<()> {
        self.send(method, path, None).await.map(|_| ())
    }

    /// Sends a body and expects no answer body (204).
    pub async fn call_no_content(&self, method: Method, path: &str, body: serde_json::Value) -> Result<()> {
        self.send(method, path, Some(body)).await.map(|_| ())
    }

    /// A GET whose answer is a file: its bytes and headers.
    pub async fn download(&self, path: &str) -> Result<(Vec<u8>, reqwest::header::HeaderMap)> {
        let resp = self.send(Method::GET, path, None).await?;
        let headers = resp.headers().clone();
        Ok((resp.bytes().await.context("the download was cut")?.to_vec(), headers))
    }

    async fn send(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach Sluice at {}", self.base))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let err: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let detail = err.as_ref().and_then(|v| v.get("error"));
        // Sluice's errors carry `error.message`; the Prometheus-compatible API's carry `error` as a string.
        let message = detail.and_then(|d| d.get("message").and_then(|m| m.as_str()).or(d.as_str())).unwrap_or(text.as_str());
        let rid = detail.and_then(|d| d.get("request_id")).and_then(|m| m.as_str());
        Err(match (status, rid) {
            (StatusCode::UNAUTHORIZED, _) => anyhow!("the server refused the token (401): {message}"),
            (StatusCode::FORBIDDEN, _) => anyhow!("not allowed (403): {message}"),
            (_, Some(rid)) => anyhow!("{} failed ({status}): {message} (request id {rid})", path),
            _ => anyhow!("{message} ({status})"),
        })
    }
}
