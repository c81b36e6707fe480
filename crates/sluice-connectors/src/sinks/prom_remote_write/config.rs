use serde::Deserialize;

/// `[sinks.NAME]` with `type = "prometheus_remote_write"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromRemoteWriteSinkConfig {
    /// The receiver's URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    /// Samples per request at most (default 2000).
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// Time limit of one request (default `10s`).
    #[serde(default = "crate::sinks::http_client::default_timeout")]
    pub timeout: String,
}

fn default_batch() -> usize {
    2000
}
