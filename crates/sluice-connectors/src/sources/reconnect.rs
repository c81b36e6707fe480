//! How a source ends one attempt, and the backoff between attempts — shared by every source.

use std::time::Duration;

use sluice_pipeline::SourceError;
use tokio_util::sync::CancellationToken;

/// Why one streaming attempt ended.
pub(crate) enum Stop {
    /// The pipeline is stopping.
    Shutdown,
    /// Connection loss or a passing error: reconnect after a pause.
    Retry(String),
    /// Retrying cannot fix it (bad credentials, purged position, dropped slot).
    Fatal(SourceError),
}

impl Stop {
    /// How a failed connect ends the attempt, by the failure's kind: credentials, TLS verification and the
    /// egress policy do not fix themselves, so they stop the pipeline; the rest is retried.
    pub fn from_connect(f: sluice_engines::CheckFailure, doing: &str) -> Self {
        use sluice_engines::FailureKind as K;
        match f.kind {
            K::AuthFailed | K::TlsFailure | K::EgressDenied => Stop::Fatal(SourceError::new(format!("cannot {doing}: {}", f.message))),
            K::Unreachable | K::Refused | K::Timeout | K::Protocol => Stop::Retry(format!("cannot {doing}: {}", f.message)),
        }
    }
}

/// 200 ms, doubling to `max`.
pub(crate) struct Backoff {
    pause: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self { pause: Duration::from_millis(200), max }
    }

    /// Logs why the attempt ended and pauses; `false` when the pipeline is stopping meanwhile.
    pub async fn wait(&mut self, source: &str, why: &str, shutdown: &CancellationToken) -> bool {
        tracing::warn!(source, reason = %why, retry_in_ms = self.pause.as_millis() as u64, "source interrupted; reconnecting");
        let go_on = tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(self.pause) => true,
        };
        self.pause = (self.pause * 2).min(self.max);
        go_on
    }
}
