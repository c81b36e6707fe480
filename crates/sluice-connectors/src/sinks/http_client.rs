//! The HTTP client every HTTP sink (falcon, prometheus_remote_write, http) builds from its `url` and
//! `timeout` settings: one TLS stack (rustls), a connect timeout no longer than the request timeout, the
//! pipeline's egress policy applied to every address a name resolves to, no redirects (a redirect could
//! lead past the policy, and a webhook that moved is a configuration error), and one way to turn a refusal
//! into a [`SinkError`] without echoing what the remote answered into statuses of API-managed pipelines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::egress::EgressPolicy;
use sluice_pipeline::SinkError;

use crate::scope::Scope;

/// The request time limit every HTTP sink uses unless its `timeout` says otherwise.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A sink's client and what its errors may say.
#[derive(Clone)]
pub(crate) struct HttpTarget {
    pub client: reqwest::Client,
    pub url: String,
    quote_remote: bool,
}

/// `url` as an http(s) URL with a host; the error says what is wrong with it.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    Ok(parsed)
}

/// The problems of an HTTP sink's `url`, under `at`.
pub(crate) fn validate_url(at: &str, url: &str, errors: &mut Vec<sluice_core::ConfigError>) {
    if let Err(e) = parse_url(url) {
        errors.push(sluice_core::ConfigError::new(sluice_core::config::key_path(at, "url"), e));
    }
}

/// Where an HTTP sink's `url` connects.
pub(crate) fn endpoint(url: &str) -> Vec<crate::component::Endpoint> {
    crate::scope::url_host_port(url, 80).map(|(host, port)| crate::component::Endpoint { key: "url", host, port }).into_iter().collect()
}

/// Builds the client for a validated `url` with the egress policy of `scope`.
pub(crate) fn build(url: &str, timeout: Duration, scope: &Scope) -> Result<HttpTarget, String> {
    let parsed = parse_url(url).map_err(|e| format!("`url`: {e}"))?;
    let client = egress_client(&parsed, timeout, scope.egress.as_ref()).map_err(|e| format!("`url`: {e}"))?;
    Ok(HttpTarget { client, url: url.to_string(), quote_remote: scope.quote_remote })
}

/// A client for `url` that applies the egress policy to every address it connects to (an address in the
/// URL is checked here; names when they resolve), with no proxy (it would hide the destination) and no
/// redirects (one could lead past the policy). Also used by the control plane's notification channels.
pub fn egress_client(url: &reqwest::Url, timeout: Duration, egress: Option<&Arc<EgressPolicy>>) -> Result<reqwest::Client, String> {
    let mut builder =
        reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5).min(timeout)).redirect(reqwest::redirect::Policy::none());
    if let Some(policy) = egress {
        if let Some(host) = url.host() {
            let ip = match host {
                url::Host::Ipv4(a) => Some(std::net::IpAddr::V4(a)),
                url::Host::Ipv6(a) => Some(std::net::IpAddr::V6(a)),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = ip {
                policy.check(&ip.to_string(), &[ip]).map_err(|e| e.to_string())?;
            }
        }
        builder = builder.no_proxy().dns_resolver(Arc::new(PolicyResolver(policy.clone())));
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Answers that refuse what was sent, not the sending: retrying the same batch cannot help.
pub fn refuses_content(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

impl HttpTarget {
    /// The error for a non-2xx answer from `what` (e.g. "the webhook"). Only answers that refuse the request's
    /// *content* refuse the batch for good (400, 413, 415, 422: it goes to the dead-letter output); every other
    /// code — 5xx, 408, 429, and 401, 403, 404 and the like, which say the target is not ready or not set up as
    /// configured — is retried with backoff, the error in the sink's health, so a wrong token or a missing
    /// endpoint never turns a stream into dead letters. The answer's body is quoted (cut to 200 characters, control
    /// characters escaped) only for the operator's own pipeline files.
    pub async fn refusal(&self, what: &str, resp: reqwest::Response) -> SinkError {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = if self.quote_remote {
            let text: String = String::from_utf8_lossy(&body).trim().chars().take(200).collect();
            format!(": {}", text.escape_debug())
        } else {
            format!(" ({} bytes of answer, not shown for pipelines managed through the API)", body.len())
        };
        let message = format!("{what} answered {status}{detail}");
        if refuses_content(status.as_u16()) { SinkError::permanent(message) } else { SinkError::retryable(message) }
    }

    /// The error for a request that got no answer (connection, timeout, egress refusal): retried.
    pub fn unreachable(&self, what: &str, e: reqwest::Error) -> SinkError {
        SinkError { retryable: true, message: format!("cannot reach {what} at {}: {e}", self.url), source: Some(Box::new(e)) }
    }
}

/// Sluice's webhook signature, shared by the HTTP sink and the notification channels: the value of
/// `X-Sluice-Signature` for `body` sent at `timestamp` (unix seconds, sent as `X-Sluice-Timestamp`):
/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A receiver recomputes it and refuses old
/// timestamps, which stops replays.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(format!("{timestamp}.").as_bytes());
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Resolves names and keeps the connection to addresses the egress policy allows; a name with any
/// refused address fails to resolve, with the policy's reason.
struct PolicyResolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
            policy.check(&host, &ips)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
