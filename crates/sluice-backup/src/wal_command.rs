//! WAL through PostgreSQL's own commands, for clusters that archive with `archive_command` instead of
//! Sluice's `pg_receivewal` streaming: `sluice wal-push %p` seals a finished file into the repository under
//! the same names the streaming archiver uses (`<prefix>/<file>.sealed`), and `sluice wal-get %f %p` brings
//! one back for `restore_command`. So restores, retention and verification read either kind of archive
//! the same way.
//!
//! What PostgreSQL requires of an archive command, and what these do:
//! - exit 0 only once the file is stored whole (an object appears only whole in every repository kind);
//! - a file pushed again (PostgreSQL retries after a crash between storing and recording it) succeeds
//!   when the stored copy has the same content, and fails — never overwrites — when it differs;
//! - `wal-get` of a file the archive does not hold exits 1 (PostgreSQL's "not there": the end of
//!   recovery), any other failure exits 2; the file appears at `%p` only whole.
//!
//! [`ArchiveWatch`] is the control plane's side: it reads `pg_stat_archiver` on the instance, so a failing
//! archive command shows in the archive status and the health events as the streaming archiver's errors do.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::pg_dump::Database;
use crate::repository::Repository;
use crate::sealed::DataKey;

/// The names PostgreSQL archives: segments, timeline histories, backup histories, partial segments.
pub fn is_wal_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    hex(name, 24)
        || name.strip_suffix(".history").is_some_and(|s| hex(s, 8))
        || name.strip_suffix(".partial").is_some_and(|s| hex(s, 24))
        || name.strip_suffix(".backup").is_some_and(|s| s.len() == 33 && hex(&s[..24], 24) && s.as_bytes()[24] == b'.' && hex(&s[25..], 8))
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The archive held the same content already.
    AlreadyThere,
}

fn sha_of_file(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// Opens object `path` with whichever of `keys` it was sealed with (a rotation leaves older files under
/// older keys); `None` when it is absent.
async fn open_with_any(repo: &Repository, path: &str, keys: &[DataKey]) -> Result<Option<Vec<u8>>, String> {
    let mut last = String::new();
    for key in keys {
        let Some(obj) = repo.open(path).await? else { return Ok(None) };
        let mut plain = Vec::new();
        match crate::sealed::open(obj, &mut plain, key, None).await {
            Ok(_) => return Ok(Some(plain)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("{path} in {} does not open with any key given: {last}", repo.label()))
}

/// Seals WAL file `local` into `<prefix>/<name>.sealed` with `keys[0]` (the repository's active key).
pub async fn push(repo: &Repository, keys: &[DataKey], prefix: &str, local: &Path) -> Result<Pushed, String> {
    let name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{} has no file name", local.display()))?;
    if !is_wal_name(name) {
        return Err(format!("`{name}` is not a name PostgreSQL archives (a segment, .history, .backup or .partial file)"));
    }
    let key = keys.first().ok_or("no key given")?;
    let path = format!("{prefix}/{name}.sealed");
    if let Some(existing) = open_with_any(repo, &path, keys).await? {
        let ours = sha_of_file(local)?;
        if hex::encode(Sha256::digest(&existing)) == ours {
            return Ok(Pushed::AlreadyThere);
        }
        return Err(format!("{path} in {} holds a different {name}: refusing to overwrite it (two clusters archiving to one prefix?)", repo.label()));
    }
    crate::repo::store_file(repo, key, local, &path).await?;
    Ok(Pushed::Stored)
}

/// Writes `<prefix>/<name>.sealed`, plain, to `dest` (it appears only whole); `Ok(false)` when the
/// archive does not hold it.
pub async fn get(repo: &Repository, keys: &[DataKey], prefix: &str, name: &str, dest: &Path) -> Result<bool, String> {
    if !is_wal_name(name) {
        return Err(format!("`{name}` is not a name PostgreSQL archives"));
    }
    let Some(plain) = open_with_any(repo, &format!("{prefix}/{name}.sealed"), keys).await? else {
        return Ok(false);
    };
    let partial = dest.with_extension("sluice-partial");
    std::fs::write(&partial, &plain).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, dest).map_err(|e| format!("cannot name {}: {e}", dest.display()))?;
    Ok(true)
}

/// Watches `pg_stat_archiver` of a cluster whose `archive_command` pushes WAL with `sluice wal-push`.
pub struct ArchiveWatch {
    pub db: Database,
}

impl ArchiveWatch {
    /// Reads the archiver's state every 5 s into `status` until `stop`. Errors (archiving off, an
    /// archive command that is not `sluice wal-push`, failures newer than the last success) go to
    /// `status.last_error`; the watch itself only ends when stopped.
    pub async fn run(&self, stop: tokio_util::sync::CancellationToken, status: tokio::sync::watch::Sender<crate::pg_physical::ArchiveStatus>) {
        loop {
            let s = self.read().await;
            status.send_modify(|st| match s {
                Ok((last_wal, last_at, problem)) => {
                    st.last_segment = last_wal;
                    st.last_stored_at = last_at;
                    st.last_error = problem;
                }
                Err(ref e) => st.last_error = Some(e.clone()),
            });
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
        }
    }

    async fn read(&self) -> Result<(Option<String>, Option<i64>, Option<String>), String> {
        let q = "SELECT current_setting('archive_mode') || '|' || current_setting('archive_command') || '|' || coalesce(last_archived_wal, '') || '|' || \
                 coalesce((extract(epoch FROM last_archived_time) * 1000)::bigint::text, '') || '|' || coalesce(last_failed_wal, '') || '|' || \
                 coalesce((extract(epoch FROM last_failed_time) * 1000)::bigint::text, '') FROM pg_stat_archiver";
        let row = crate::pg_dump::psql_query(&self.db, q).await?;
        let f: Vec<&str> = row.trim().splitn(6, '|').collect();
        let [mode, command, last_wal, last_at, failed_wal, failed_at] = f[..] else {
            return Err(format!("pg_stat_archiver answered `{}`", row.trim()));
        };
        let last_at: Option<i64> = last_at.parse().ok();
        let failed_at: Option<i64> = failed_at.parse().ok();
        let problem = if mode == "off" {
            Some("archive_mode is off: no WAL reaches the archive (set archive_mode = on and archive_command = 'sluice wal-push …')".to_string())
        } else if !command.contains("wal-push") {
            Some(format!("archive_command is `{command}`, not `sluice wal-push …`: the archive is not fed"))
        } else {
            failed_at
                .filter(|f| last_at.is_none_or(|l| *f > l))
                .map(|f| format!("archive_command failed for {failed_wal} at {f} ms and has not succeeded since (see the server's log)"))
        };
        Ok(((!last_wal.is_empty()).then(|| last_wal.to_string()), last_at, problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wal_names_are_pushed_or_fetched() {
        for ok in ["000000010000000000000003", "00000002.history", "000000010000000000000003.partial", "000000010000000000000003.00000028.backup"] {
            assert!(is_wal_name(ok), "{ok}");
        }
        for bad in ["../etc/passwd", "00000001000000000000000", "000000010000000000000003/x", "RECOVERYHISTORY", "00000002.history.x", ""] {
            assert!(!is_wal_name(bad), "{bad}");
        }
    }
}
