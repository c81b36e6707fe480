//! The HTTP client every HTTP sink (falcon, prometheus_remote_write, http) builds from its `url` and
//! `timeout` settings: one TLS stack (rustls), a connect timeout no longer than the request timeout.

use std::time::Duration;

/// The request time limit every HTTP sink uses unless its `timeout` says otherwise.
pub(crate) fn default_timeout() -> String {
    "10s".into()
}

/// Checks `url` and `timeout` (a duration like `10s`) and builds the client; errors name the key.
pub(crate) fn build(url: &str, timeout: &str, batch_max: usize) -> Result<reqwest::Client, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`url`: `{url}` is not an http(s) URL"));
    }
    if batch_max == 0 {
        return Err("`batch_max` must be > 0".into());
    }
    let timeout = humantime::parse_duration(timeout).map_err(|e| format!("`timeout`: `{timeout}` is not a duration: {e}"))?;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
