//! JSON-lines file or stdout sink, for debugging and for handing records to another program
//! (feature `sink-file`).
//!
//! **Guarantee**: at-least-once. A batch is acknowledged after it is written and (for files) fsynced; after
//! a crash the unacknowledged tail is appended again.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::ConfigError;
use sluice_core::config::key_path;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};
use tokio::io::AsyncWriteExt;

use crate::component::{Accepts, SinkContext, SinkSpec};
use crate::scope::Scope;

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// A file to append JSON lines to, or `-` for standard output. In a pipeline managed through the API:
    /// a relative name inside the pipeline's own folder of the data dir (no `-`, no absolute path, no `..`).
    pub path: String,
}

impl SinkSpec for FileSinkConfig {
    fn validate(&self, at: &str, scope: &Scope, errors: &mut Vec<ConfigError>) {
        if let Err(e) = FileSink::target_path(self, scope) {
            errors.push(ConfigError::new(key_path(at, "path"), e));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(FileSink::new(&self, cx.scope).await?) as Box<dyn Sink>) })
    }
}

pub struct FileSink {
    target: Target,
    /// The encoding buffer, kept between batches so it is allocated once.
    buf: Vec<u8>,
}

enum Target {
    Stdout(tokio::io::Stdout),
    /// A plain file, written and synced on the blocking pool in one hand-off per batch (`tokio::fs` would
    /// copy every batch into its own buffer and hand off twice). `None` only while a write is in flight.
    File {
        path: PathBuf,
        file: Option<std::fs::File>,
    },
}

impl FileSink {
    /// Where the sink writes (`None`: standard output); the error is for the key `path`.
    pub fn target_path(config: &FileSinkConfig, scope: &Scope) -> Result<Option<PathBuf>, String> {
        if config.path == "-" {
            if scope.confined() {
                return Err("`-` (standard output) is for `sluice run`; a managed pipeline writes a file in its own folder".into());
            }
            return Ok(None);
        }
        scope.file(&config.path).map(Some)
    }

    pub async fn new(config: &FileSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = match Self::target_path(config, scope).map_err(|e| format!("`path`: {e}"))? {
            None => Target::Stdout(tokio::io::stdout()),
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                scope.prepare_file(&path).map_err(|e| format!("`path`: {e}"))?;
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                if scope.confined() {
                    // A link planted after the check still cannot redirect the write.
                    options.custom_flags(libc::O_NOFOLLOW);
                }
                let file = options.open(&path).map_err(|e| format!("`path`: cannot open {}: {e}", path.display()))?;
                Target::File { path, file: Some(file) }
            }
        };
        Ok(Self { target, buf: Vec::new() })
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            for r in &batch.records {
                serde_json::to_writer(&mut buf, r).map_err(|e| SinkError::permanent(format!("cannot encode a record: {e}")))?;
                buf.push(b'\n');
            }
            let io = |e: std::io::Error| SinkError { retryable: true, message: format!("write failed: {e}"), source: Some(Box::new(e)) };
            match &mut self.target {
                Target::Stdout(out) => {
                    out.write_all(&buf).await.map_err(io)?;
                    out.flush().await.map_err(io)?;
                    self.buf = buf;
                }
                Target::File { path, file } => {
                    let Some(mut f) = file.take() else {
                        return Err(SinkError::permanent(format!("{} is no longer open (an earlier write failed)", path.display())));
                    };
                    let (f, buf, result) = tokio::task::spawn_blocking(move || {
                        use std::io::Write;
                        let result = f.write_all(&buf).and_then(|()| f.sync_data());
                        (f, buf, result)
                    })
                    .await
                    .map_err(|e| SinkError::permanent(format!("the writer of {} failed: {e}", path.display())))?;
                    *file = Some(f);
                    self.buf = buf;
                    result.map_err(|e| SinkError { retryable: true, message: format!("cannot write {}: {e}", path.display()), source: Some(Box::new(e)) })?;
                }
            }
            Ok(Vec::new())
        })
    }
}
