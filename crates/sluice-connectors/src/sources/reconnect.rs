//! How a source ends one attempt, the backoff between attempts, and the loop that drives attempts —
//! shared by every source.

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
    async fn wait(&mut self, source: &str, why: &str, shutdown: &CancellationToken) -> bool {
        tracing::warn!(source, reason = %why, retry_in_ms = self.pause.as_millis() as u64, "source interrupted; reconnecting");
        let go_on = tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(self.pause) => true,
        };
        self.pause = (self.pause * 2).min(self.max);
        go_on
    }
}

/// What a source does after one attempt (see [`Backoff::settle`]).
pub(crate) enum Next<T> {
    /// The attempt succeeded with this value.
    Done(T),
    /// The pipeline is stopping.
    Stop,
    /// The pause is over: try again.
    Again,
}

impl Backoff {
    /// Settles one attempt, the one retry rule every source follows: a value is done, a shutdown stops, a
    /// [`Stop::Retry`] waits (backing off) and asks for another attempt, and a [`Stop::Fatal`] is the error.
    /// `what` says what the attempts do, for the log (`initial snapshot`), or is empty. Used as
    /// `loop { match backoff.settle(..., attempt().await, ...).await? { … } }`: an attempt borrows the
    /// source's state mutably, which a closure handed to a driver could not do across awaits and stay `Send`.
    pub async fn settle<T>(&mut self, source: &str, what: &str, result: Result<T, Stop>, shutdown: &CancellationToken) -> Result<Next<T>, SourceError> {
        match result {
            Ok(value) => Ok(Next::Done(value)),
            Err(Stop::Shutdown) => Ok(Next::Stop),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::Retry(why)) => {
                let why = if what.is_empty() { why } else { format!("{what}: {why}") };
                Ok(if self.wait(source, &why, shutdown).await { Next::Again } else { Next::Stop })
            }
        }
    }
}
