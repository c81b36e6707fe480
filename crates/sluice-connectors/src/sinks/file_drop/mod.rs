//! File drop sink (feature `sink-file-drop`): row changes into one file per table and period (CSV or JSON
//! Lines, optionally gzip), a manifest per period written last, and an upload of both to a third party's
//! FTP or SFTP server.
//!
//! **Guarantee: exactly once** into the local files (see [`spool`]): after a `kill -9` the open files are
//! cut back to their journal and the batch is skipped up to the journaled cursor. Uploads are
//! **at-least-once attempts, at most once arrivals**: retried until the server acknowledges, and a file the
//! server already renamed into place is never sent again (see [`upload`]).
//!
//! A batch is acknowledged once its rows are fsynced in the open files; closing periods and uploading follow
//! in the background, so a slow or unreachable server never holds back the pipeline — the files wait on
//! local disk (`sluice_file_drop_upload_pending` counts the periods waiting).

mod config;
mod encode;
mod remote;
pub mod spool;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;

pub use config::{FileDropSinkConfig, UploadConfig};
pub use encode::Format;
use futures_util::future::BoxFuture;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::remote::{RemoteKind, RemoteTarget};
use self::spool::{Spool, SpoolSettings};
use crate::component::SinkContext;
use crate::scope::Scope;

pub struct FileDropSink {
    config: FileDropSinkConfig,
    pipeline: String,
    name: String,
    dir: PathBuf,
    scope: Scope,
    target: Option<(RemoteTarget, String, u16)>,
    /// `None` after a failed write (the in-memory journal may be ahead of the disk): the next call reopens
    /// it from disk, as a restart would.
    spool: Option<Spool>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    uploader: Option<tokio::task::JoinHandle<()>>,
}

impl FileDropSink {
    pub async fn new(config: FileDropSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let dir = cx.scope.file(&config.dir).map_err(|e| format!("`dir`: {e}"))?;
        let target = match &config.upload {
            None => None,
            Some(up) => Some(remote_target(up, cx.scope)?),
        };
        let mut sink = Self {
            config,
            pipeline: cx.pipeline.to_string(),
            name: cx.name.to_string(),
            dir,
            scope: cx.scope.clone(),
            target,
            spool: None,
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
            uploader: None,
        };
        sink.spool = Some(sink.open_spool().await.map_err(|e| e.message)?);
        Ok(sink)
    }

    fn settings(&self) -> Result<SpoolSettings, String> {
        let c = &self.config;
        Ok(SpoolSettings {
            pipeline: self.pipeline.clone(),
            sink: self.name.clone(),
            dir: self.dir.clone(),
            calendar: c.calendar().map_err(|(key, e)| format!("`{key}`: {e}"))?,
            zone: c.time_zone.clone(),
            encoder: encode::Encoder { format: c.format, payload: c.payload, meta_columns: c.meta_columns },
            gzip: c.gzip,
            name: c.name.clone(),
            manifest: c.manifest.clone(),
            grace_ms: c.grace.as_millis() as i64,
            upload: c.upload.is_some(),
        })
    }

    async fn open_spool(&self) -> Result<Spool, SinkError> {
        if self.scope.confined() {
            self.scope.prepare_file(&self.dir.join(".sluice").join("state.json")).map_err(|e| SinkError::permanent(format!("`dir`: {e}")))?;
        }
        let settings = self.settings().map_err(SinkError::permanent)?;
        tokio::task::spawn_blocking(move || Spool::open(settings))
            .await
            .map_err(|e| SinkError::permanent(format!("the file writer failed: {e}")))?
            .map_err(SinkError::retryable)
    }

    /// Runs `f` on the spool on the blocking pool. On error the spool is dropped, to be reopened from disk.
    async fn with_spool<T: Send + 'static>(&mut self, f: impl FnOnce(&mut Spool) -> Result<T, String> + Send + 'static) -> Result<T, SinkError> {
        let mut spool = match self.spool.take() {
            Some(s) => s,
            None => self.open_spool().await?,
        };
        let (spool, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut spool);
            (spool, r)
        })
        .await
        .map_err(|e| SinkError::permanent(format!("the file writer failed: {e}")))?;
        match result {
            Ok(v) => {
                self.spool = Some(spool);
                Ok(v)
            }
            Err(e) => Err(SinkError::retryable(e)),
        }
    }
}

fn remote_target(up: &UploadConfig, scope: &Scope) -> Result<(RemoteTarget, String, u16), String> {
    let (scheme, user, host, port, dir) = up.parts().map_err(|e| format!("`upload.url`: {e}"))?;
    let kind = if scheme == "ftp" {
        let in_url = url::Url::parse(&up.url).ok().and_then(|u| u.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()));
        let password = up.password.clone().or(in_url.map(sluice_core::Secret::new)).ok_or("`upload.password`: FTP needs a password")?;
        RemoteKind::Ftp { password }
    } else {
        let text = match (&up.key_file, &up.private_key) {
            (Some(f), _) => {
                let path = scope.file(f).map_err(|e| format!("`upload.key_file`: {e}"))?;
                if scope.confined() {
                    scope.prepare_file(&path).map_err(|e| format!("`upload.key_file`: {e}"))?;
                }
                std::fs::read_to_string(&path).map_err(|e| format!("`upload.key_file`: cannot read {}: {e}", path.display()))?
            }
            (None, Some(k)) => k.expose().clone(),
            (None, None) => return Err("`upload.key_file`: SFTP needs a key".into()),
        };
        let key = sluice_sftp::parse_key(&text).map_err(|e| format!("`upload.{}`: {e}", if up.key_file.is_some() { "key_file" } else { "private_key" }))?;
        RemoteKind::Sftp { key: Arc::new(key), host_key: up.host_key.clone().ok_or("`upload.host_key`: SFTP needs the server's fingerprint")? }
    };
    Ok((RemoteTarget { kind, user, dir, timeout: up.timeout }, host, port))
}

impl Sink for FileDropSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            if self.uploader.is_none() {
                let up = upload::Uploader {
                    pipeline: self.pipeline.clone(),
                    sink: self.name.clone(),
                    dir: self.dir.clone(),
                    target: self.target.clone(),
                    scope: self.scope.clone(),
                    keep: self.config.keep,
                    wake: self.wake.clone(),
                    stop: self.stop.clone(),
                };
                self.uploader = Some(tokio::spawn(up.run()));
            }
            Ok(())
        })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            if self.spool.is_none() {
                self.spool = Some(self.open_spool().await?);
            }
            let skip = match self.spool.as_ref().and_then(|s| s.cursor()) {
                Some(c) => batch.applied(c).map_err(SinkError::permanent)?,
                None => 0,
            };
            let records = batch.records[skip..].to_vec();
            let end = batch.end();
            let (rejected, closed) = self
                .with_spool(move |s| {
                    let rejected = if records.is_empty() { Vec::new() } else { s.write(&records, skip, end)? };
                    Ok((rejected, s.close_due()?))
                })
                .await?;
            if closed > 0 {
                self.wake.notify_one();
            }
            Ok(rejected)
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            if self.with_spool(|s| s.close_due()).await? > 0 {
                self.wake.notify_one();
            }
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            if let Some(task) = self.uploader.take() {
                // An upload cut here is finished (or redone) by the next start: the journal says where it was.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
            }
        })
    }
}
