//! Uploads closed periods to the third party's server, oldest first, each period's files before its
//! manifest, retrying until the server has acknowledged every step; and deletes local copies past `keep`.
//!
//! A file goes up under a temporary name (`.NAME.part`), then is renamed. The uploader's journal records
//! "renaming" before it asks for the rename, which lets a retry tell the cases apart:
//! - temporary file present → rename it (unless the final name exists: then that file is not ours — it
//!   is never overwritten; ours is removed, and the conflict logged and counted);
//! - temporary file gone → the rename happened (the third party may already have fetched and deleted the
//!   file): done, never uploaded twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::remote::{Conn, RemoteTarget};
use super::spool::{Manifest, write_atomic};
use crate::scope::Scope;

pub const UPLOADS_TOTAL: &str = "sluice_file_drop_uploads_total";
pub const UPLOAD_PENDING: &str = "sluice_file_drop_upload_pending";
pub const UPLOAD_CONFLICTS_TOTAL: &str = "sluice_file_drop_upload_conflicts_total";

pub struct Uploader {
    pub pipeline: String,
    pub sink: String,
    pub dir: PathBuf,
    pub target: Option<(RemoteTarget, String, u16)>,
    pub scope: Scope,
    pub keep: Duration,
    pub wake: Arc<Notify>,
    pub stop: CancellationToken,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UploadJournal {
    /// File name → `renaming` or `done`, for the manifest being uploaded.
    files: BTreeMap<String, Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    Renaming,
    Done,
}

impl Uploader {
    pub async fn run(self) {
        let mut conn: Option<Conn> = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            let result = self.drain(&mut conn).await;
            if let Err(e) = self.housekeeping() {
                tracing::warn!(pipeline = %self.pipeline, sink = %self.sink, error = %e, "file drop: cannot delete old local copies");
            }
            let wait = match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    Duration::from_secs(30)
                }
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, sink = %self.sink, error = %e, retry_in = ?backoff, "file drop: upload failed; retrying");
                    metrics::counter!(UPLOADS_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.sink.clone(), "outcome" => "error").increment(1);
                    if let Some(c) = conn.take() {
                        c.close().await;
                    }
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    w
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(c) = conn {
            c.close().await;
        }
    }

    fn outbox(&self) -> PathBuf {
        self.dir.join(".sluice").join("outbox")
    }

    fn markers(&self) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = std::fs::read_dir(self.outbox())
            .map_err(|e| format!("cannot list {}: {e}", self.outbox().display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Uploads every queued period; `Err` at the first failure (the caller backs off and calls again).
    async fn drain(&self, conn: &mut Option<Conn>) -> Result<(), String> {
        let Some((target, host, port)) = &self.target else { return Ok(()) };
        let markers = self.markers()?;
        metrics::gauge!(UPLOAD_PENDING, "pipeline" => self.pipeline.clone(), "sink" => self.sink.clone()).set(markers.len() as f64);
        for (done, marker) in markers.iter().enumerate() {
            if self.stop.is_cancelled() {
                return Ok(());
            }
            let manifest_name = marker.split_once('_').map(|(_, m)| m).unwrap_or(marker);
            let text = std::fs::read(self.dir.join(manifest_name)).map_err(|e| format!("cannot read manifest {manifest_name}: {e}"))?;
            let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| format!("manifest {manifest_name} is damaged: {e}"))?;
            if conn.is_none() {
                let ip = self.scope.allowed_address(host, *port).await?;
                *conn = Some(Conn::connect(target, std::net::SocketAddr::new(ip, *port)).await?);
            }
            let c = conn.as_mut().expect("connected above");
            let mut journal = self.load_journal()?;
            for name in manifest.files.iter().map(|f| f.name.as_str()).chain(std::iter::once(manifest_name)) {
                self.upload_one(c, target, name, &mut journal).await?;
            }
            let path = self.outbox().join(marker);
            std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            self.save_journal(&UploadJournal::default())?;
            metrics::gauge!(UPLOAD_PENDING, "pipeline" => self.pipeline.clone(), "sink" => self.sink.clone()).set((markers.len() - done - 1) as f64);
            tracing::info!(pipeline = %self.pipeline, sink = %self.sink, manifest = %manifest_name, files = manifest.files.len(), "file drop: period uploaded");
        }
        Ok(())
    }

    async fn upload_one(&self, c: &mut Conn, t: &RemoteTarget, name: &str, journal: &mut UploadJournal) -> Result<(), String> {
        let tmp = format!(".{name}.part");
        let step = journal.files.get(name).copied();
        if step == Some(Step::Done) {
            return Ok(());
        }
        if step.is_none() {
            c.put(&self.dir.join(name), &tmp, &t.dir, t.timeout).await?;
            journal.files.insert(name.to_string(), Step::Renaming);
            self.save_journal(journal)?;
        }
        let outcome = if !c.exists(&tmp, &t.dir, t.timeout).await? {
            // Renamed before a crash or a lost answer; the third party may have taken it since.
            "uploaded"
        } else if c.exists(name, &t.dir, t.timeout).await? {
            tracing::error!(pipeline = %self.pipeline, sink = %self.sink, file = %name, local = %self.dir.join(name).display(),
                "file drop: the server already has a file of this name that Sluice did not put there; it is kept, Sluice's copy stays local");
            metrics::counter!(UPLOAD_CONFLICTS_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.sink.clone()).increment(1);
            c.remove(&tmp, &t.dir, t.timeout).await?;
            "conflict"
        } else {
            c.rename(&tmp, name, &t.dir, t.timeout).await?;
            "uploaded"
        };
        metrics::counter!(UPLOADS_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.sink.clone(), "outcome" => outcome).increment(1);
        journal.files.insert(name.to_string(), Step::Done);
        self.save_journal(journal)
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(".sluice").join("uploads.json")
    }

    fn load_journal(&self) -> Result<UploadJournal, String> {
        match std::fs::read(self.journal_path()) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{} is damaged: {e}", self.journal_path().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UploadJournal::default()),
            Err(e) => Err(format!("cannot read {}: {e}", self.journal_path().display())),
        }
    }

    fn save_journal(&self, j: &UploadJournal) -> Result<(), String> {
        let work = self.dir.join(".sluice");
        write_atomic(&work, "uploads.json", &serde_json::to_vec(j).expect("a journal serializes"), &work)
    }

    /// Deletes the periods (their manifest and the files it lists) this sink closed more than `keep` ago
    /// and that are not waiting for upload. Only files a manifest of this pipeline and sink names are touched,
    /// so a folder shared with other files is safe.
    fn housekeeping(&self) -> Result<(), String> {
        let queued: std::collections::HashSet<String> =
            self.markers()?.into_iter().map(|m| m.split_once('_').map(|(_, n)| n.to_string()).unwrap_or(m)).collect();
        let Some(cutoff) = std::time::SystemTime::now().checked_sub(self.keep) else { return Ok(()) };
        for entry in std::fs::read_dir(&self.dir).map_err(|e| format!("cannot list {}: {e}", self.dir.display()))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !name.ends_with(".json") || !meta.is_file() || queued.contains(&name) || !meta.modified().is_ok_and(|m| m < cutoff) {
                continue;
            }
            let Ok(text) = std::fs::read(entry.path()) else { continue };
            let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) else { continue };
            if manifest.pipeline != self.pipeline || manifest.sink != self.sink {
                continue;
            }
            for f in &manifest.files {
                match std::fs::remove_file(self.dir.join(&f.name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("cannot remove {}: {e}", f.name)),
                    _ => {}
                }
            }
            std::fs::remove_file(entry.path()).map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
        Ok(())
    }
}
