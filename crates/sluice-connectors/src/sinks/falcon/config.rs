use serde::Deserialize;

/// `[sinks.NAME]` with `type = "falcon"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FalconSinkConfig {
    /// The agent's push URL, e.g. `http://127.0.0.1:1988/v1/push`.
    pub url: String,
    /// Samples per request at most (default 500).
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// Time limit of one request (default `10s`).
    #[serde(default = "crate::sinks::http_client::default_timeout")]
    pub timeout: String,
}

fn default_batch() -> usize {
    500
}
