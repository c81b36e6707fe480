//! JSON-lines file or stdout sink, for debugging and for handing records to another program
//! (feature `sink-file`).
//!
//! **Guarantee**: at-least-once. A batch is acknowledged after it is written and (for files) fsynced; after
//! a crash the unacknowledged tail is appended again.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::component::Record;
use sluice_pipeline::{Rejected, Sink, SinkError};
use tokio::io::AsyncWriteExt;

use crate::scope::Scope;

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// A file to append JSON lines to, or `-` for standard output. In a pipeline managed through the API:
    /// a relative name inside the pipeline's own folder of the data dir (no `-`, no absolute path, no `..`).
    pub path: String,
}

pub struct FileSink {
    target: Target,
}

enum Target {
    Stdout(tokio::io::Stdout),
    File { path: PathBuf, file: tokio::fs::File },
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
                scope.prepare_file(&path).map_err(|e| format!("`path`: {e}"))?;
                let mut options = tokio::fs::OpenOptions::new();
                options.create(true).append(true);
                if scope.confined() {
                    // A link planted after the check still cannot redirect the write.
                    options.custom_flags(libc::O_NOFOLLOW);
                }
                let file = options.open(&path).await.map_err(|e| format!("`path`: cannot open {}: {e}", path.display()))?;
                Target::File { path, file }
            }
        };
        Ok(Self { target })
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(records.len() * 128);
            for r in records {
                serde_json::to_writer(&mut buf, r).map_err(|e| SinkError::permanent(format!("cannot encode a record: {e}")))?;
                buf.push(b'\n');
            }
            let io = |e: std::io::Error| SinkError { retryable: true, message: format!("write failed: {e}"), source: Some(Box::new(e)) };
            match &mut self.target {
                Target::Stdout(out) => {
                    out.write_all(&buf).await.map_err(io)?;
                    out.flush().await.map_err(io)?;
                }
                Target::File { path, file } => {
                    file.write_all(&buf).await.map_err(|e| SinkError {
                        retryable: true,
                        message: format!("cannot write {}: {e}", path.display()),
                        source: Some(Box::new(e)),
                    })?;
                    file.sync_data().await.map_err(io)?;
                }
            }
            Ok(Vec::new())
        })
    }
}
