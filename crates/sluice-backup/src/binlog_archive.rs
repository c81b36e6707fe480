//! MariaDB/MySQL binlog archiving and point-in-time restore.
//!
//! **Archiving** ([`BinlogArchiver`]): `mariadb-binlog --read-from-remote-server --raw --stop-never`
//! connects as a replica from the start of a binlog file and writes every event, byte for byte, into a
//! local copy — identical to the server's own file (the tests compare them). Sluice does not use its own
//! replica connection here: the `mysql_async` binlog request cannot ask MariaDB for its `Annotate_rows`
//! events, so a file written from it would lack them and its offsets would no longer be the server's — the
//! positions a full backup records. When the server rotates, the finished file is sealed into
//! `binlog/<prefix>/<file>.sealed`; the file being written is sealed every few seconds as
//! `<file>.partial.sealed`. After a restart the archiver resumes at the first file the repository does not
//! hold whole, from its beginning. A file purged from the server before it was archived is reported as a
//! hole, never skipped. Sluice's own reader ([`transactions`]) reads the archived files at restore.
//!
//! **Point-in-time restore** ([`restore_to_point`]): the logical full backup first (its binlog position is
//! in its manifest), then the archived binlogs from exactly that position through `mariadb-binlog` into
//! `mariadb`, stopping at a position Sluice computes itself from the events (the end of the last
//! transaction committed at or before the target second, or of the target GTID) — never `--stop-datetime`,
//! which reads the host's time zone. The files must follow each other without a gap, and the last GTID
//! streamed must be the one computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::AsyncWriteExt;

use crate::mariadb_dump::Server;
use crate::repo::{BinlogPosition, Manifest, manifest, now_ms};
use crate::repository::Repository;
use crate::sealed::DataKey;

const MAGIC: &[u8; 4] = b"\xfebin";
const ROTATE_EVENT: u8 = 4;
const XID_EVENT: u8 = 16;
const QUERY_EVENT: u8 = 2;
const STOP_EVENT: u8 = 3;
const MARIADB_GTID_EVENT: u8 = 162;

/// Where an instance's binlogs go in a repository.
pub fn binlog_prefix(instance: &str) -> String {
    format!("binlog/{instance}")
}

/// `mysql-bin.000012` → (`mysql-bin`, 12).
fn split_name(name: &str) -> Option<(&str, u64)> {
    let (base, n) = name.rsplit_once('.')?;
    (n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit())).then(|| Some((base, n.parse().ok()?)))?
}

fn next_name(name: &str) -> Option<String> {
    let (base, n) = split_name(name)?;
    Some(format!("{base}.{:06}", n + 1))
}

/// What the archiver has done.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArchiveStatus {
    /// The file being archived and how far (its byte length so far).
    pub file: Option<String>,
    pub pos: u64,
    /// The newest event's timestamp (Unix seconds).
    pub last_event_at: Option<i64>,
    /// The newest file stored whole.
    pub last_complete: Option<String>,
    pub last_stored_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Archives one server's binlogs until stopped.
pub struct BinlogArchiver {
    pub server: Server,
    pub repo: Repository,
    pub key: DataKey,
    /// `binlog/<instance>`.
    pub prefix: String,
    /// A local folder for the file being written.
    pub spool: PathBuf,
    /// The replica id Sluice connects with (unique among the server's replicas).
    pub server_id: u32,
    /// Where to start when the repository holds nothing yet (default: the server's current file).
    pub start_file: Option<String>,
    pub partial_every: Duration,
}

/// The archived files of a prefix: name → (complete?, object path); partials only where no complete copy.
pub async fn archived_binlogs(repo: &Repository, prefix: &str) -> Result<BTreeMap<String, (bool, String)>, String> {
    let mut out = BTreeMap::new();
    for o in repo.list(prefix).await? {
        let Some(name) = o.path.rsplit('/').next() else { continue };
        if let Some(file) = name.strip_suffix(".partial.sealed") {
            out.entry(file.to_string()).or_insert((false, o.path.clone()));
        } else if let Some(file) = name.strip_suffix(".sealed") {
            out.insert(file.to_string(), (true, o.path.clone()));
        }
    }
    // Order by sequence number, not text (`.999999` → `.1000000`).
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort_by_key(|(n, _)| split_name(n).map(|(_, k)| k).unwrap_or(0));
    Ok(v.into_iter().collect())
}

impl BinlogArchiver {
    pub async fn run(&self, stop: tokio_util::sync::CancellationToken, status: tokio::sync::watch::Sender<ArchiveStatus>) -> Result<(), String> {
        std::fs::create_dir_all(&self.spool).map_err(|e| format!("cannot create {}: {e}", self.spool.display()))?;
        let mut backoff = Duration::from_millis(500);
        loop {
            let r = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = self.stream_once(&status, &stop) => r,
            };
            match r {
                Ok(()) => return Ok(()),
                Err(Fatal(e)) => {
                    status.send_modify(|s| s.last_error = Some(e.clone()));
                    return Err(e);
                }
                Err(Retry(e)) => {
                    tracing::warn!(prefix = %self.prefix, error = %e, "binlog archiving interrupted; resuming");
                    status.send_modify(|s| s.last_error = Some(e));
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// The file to (re)start from: the first one the repository does not hold whole.
    async fn start_at(&self) -> Result<String, Stop> {
        let archived = archived_binlogs(&self.repo, &self.prefix).await.map_err(Retry)?;
        if let Some((name, (complete, _))) = archived.iter().next_back() {
            return if *complete { next_name(name).ok_or_else(|| Fatal(format!("`{name}` is not a binlog file name"))) } else { Ok(name.clone()) };
        }
        if let Some(f) = &self.start_file {
            return Ok(f.clone());
        }
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.server.host.clone())
            .tcp_port(self.server.port)
            .user(Some(self.server.user.clone()))
            .pass(Some(self.server.password.clone()));
        let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| Retry(format!("cannot connect to {:?}: {e}", self.server)))?;
        let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await.map_err(|e| Retry(format!("SHOW MASTER STATUS: {e}")))?;
        let _ = conn.disconnect().await;
        row.and_then(|r| r.get::<String, _>(0)).ok_or_else(|| Fatal("the server has no binary log (log_bin is off)".into()))
    }

    /// One run of `mariadb-binlog --read-from-remote-server --raw --stop-never` from the first file not
    /// archived whole, storing what it writes until it stops (or `stop`).
    async fn stream_once(&self, status: &tokio::sync::watch::Sender<ArchiveStatus>, stop: &tokio_util::sync::CancellationToken) -> Result<(), Stop> {
        use std::process::Stdio;
        let first = self.start_at().await?;
        // A fresh spool: the file being written is streamed again from its start.
        for e in std::fs::read_dir(&self.spool).map_err(|e| Retry(format!("cannot list {}: {e}", self.spool.display())))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let secrets = tempfile::tempdir().map_err(|e| Retry(format!("cannot make a private folder: {e}")))?;
        let options = crate::mariadb_dump::options_file(secrets.path(), &self.server).map_err(Retry)?;
        let mut child = tokio::process::Command::new("mariadb-binlog")
            .arg(format!("--defaults-extra-file={}", options.display()))
            .args(["--read-from-remote-server", "--raw", "--stop-never", "--verify-binlog-checksum"])
            .arg(format!("--stop-never-slave-server-id={}", self.server_id))
            .arg(format!("--result-file={}/", self.spool.display()))
            .arg(&first)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Fatal(format!("cannot run mariadb-binlog (package mariadb-client): {e}")))?;
        let err = tokio::spawn(crate::repo::tail_of(child.stderr.take().expect("piped")));
        status.send_modify(|s| {
            s.file = Some(first.clone());
            s.pos = 4;
        });
        let mut last_partial = std::time::Instant::now();
        let mut partial_stamp: Option<(String, u64)> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = child.kill().await;
                    // What was received is stored before returning: whole files whole, the rest partial.
                    self.store_spool(status, &mut partial_stamp, true, false).await.map_err(Retry)?;
                    return Ok(());
                }
                st = child.wait() => {
                    let said = err.await.unwrap_or_default();
                    self.store_spool(status, &mut partial_stamp, true, false).await.map_err(Retry)?;
                    if said.contains("Could not find first log file") || said.contains("1236") {
                        return Err(Fatal(format!(
                            "binlog {first} is no longer on the server (purged before it was archived: {said}); the archive has a hole here — take a new full backup"
                        )));
                    }
                    return Err(Retry(format!("mariadb-binlog stopped ({}): {said}", st.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))));
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let due = last_partial.elapsed() >= self.partial_every;
                    self.store_spool(status, &mut partial_stamp, due, true).await.map_err(Retry)?;
                    if due {
                        last_partial = std::time::Instant::now();
                    }
                }
            }
        }
    }

    /// Stores every spooled file but the newest whole (the server moved on from it), and the newest as a
    /// partial when `with_partial` and it grew. `running`: the newest is still being written.
    async fn store_spool(
        &self,
        status: &tokio::sync::watch::Sender<ArchiveStatus>,
        stamp: &mut Option<(String, u64)>,
        with_partial: bool,
        running: bool,
    ) -> Result<(), String> {
        let mut files: Vec<(u64, String)> = std::fs::read_dir(&self.spool)
            .map_err(|e| format!("cannot list {}: {e}", self.spool.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|n| split_name(&n).map(|(_, k)| k).map(|k| (k, n)))
            .collect();
        files.sort();
        let Some((_, newest)) = files.last().cloned() else { return Ok(()) };
        for (_, name) in &files {
            let local = self.spool.join(name);
            if name != &newest || !running && complete_file(&local) {
                self.store(&local, &format!("{}/{name}.sealed", self.prefix)).await?;
                let _ = self.repo.delete(&format!("{}/{name}.partial.sealed", self.prefix)).await;
                std::fs::remove_file(&local).map_err(|e| format!("cannot remove {}: {e}", local.display()))?;
                status.send_modify(|s| {
                    s.last_complete = Some(name.clone());
                    s.last_stored_at = Some(now_ms());
                    s.last_error = None;
                });
            }
        }
        let local = self.spool.join(&newest);
        let Ok(meta) = std::fs::metadata(&local) else { return Ok(()) };
        status.send_modify(|s| {
            s.file = Some(newest.clone());
            s.pos = meta.len();
        });
        if with_partial && stamp.as_ref() != Some(&(newest.clone(), meta.len())) && meta.len() > 4 {
            self.store(&local, &format!("{}/{newest}.partial.sealed", self.prefix)).await?;
            if let Ok(bytes) = std::fs::read(&local)
                && let Some(t) = transactions(&bytes).ok().and_then(|t| t.last().cloned())
            {
                status.send_modify(|s| s.last_event_at = Some(t.committed_at));
            }
            *stamp = Some((newest, meta.len()));
            status.send_modify(|s| s.last_stored_at = Some(now_ms()));
        }
        Ok(())
    }

    async fn store(&self, local: &Path, path: &str) -> Result<(), String> {
        crate::repo::store_file(&self.repo, &self.key, local, path).await
    }
}

enum Stop {
    Retry(String),
    Fatal(String),
}
use Stop::{Fatal, Retry};

/// Whether a binlog file ends with its ROTATE event (the server closed it; a stopped server's last file
/// ends with STOP instead, and is complete too).
fn complete_file(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let mut at = 4usize;
    let mut last = 0u8;
    while at + 19 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().expect("4")) as usize;
        if size < 19 || at + size > bytes.len() {
            return false;
        }
        last = bytes[at + 4];
        at += size;
    }
    at == bytes.len() && (last == ROTATE_EVENT || last == STOP_EVENT)
}

// ------------------------------------------------------------------ reading archived files

/// One transaction in a binlog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `domain-server-seq`.
    pub gtid: String,
    /// Where it begins (its GTID event) and ends (after its last event).
    pub start: u64,
    pub end: u64,
    /// The timestamp of its last event (the commit), Unix seconds.
    pub committed_at: i64,
}

/// The transactions of a binlog file, in order (MariaDB GTID events delimit them).
pub fn transactions(file: &[u8]) -> Result<Vec<Transaction>, String> {
    if file.len() < 4 || &file[..4] != MAGIC {
        return Err("not a binlog file (no magic number)".into());
    }
    let mut out: Vec<Transaction> = Vec::new();
    let mut at = 4usize;
    let mut open: Option<Transaction> = None;
    let mut standalone = false;
    while at + 19 <= file.len() {
        let h = &file[at..at + 19];
        let ts = u32::from_le_bytes(h[0..4].try_into().expect("4")) as i64;
        let kind = h[4];
        let server = u32::from_le_bytes(h[5..9].try_into().expect("4"));
        let size = u32::from_le_bytes(h[9..13].try_into().expect("4")) as usize;
        if size < 19 || at + size > file.len() {
            // A partial file ends mid-event: what follows is not there yet.
            break;
        }
        let data = &file[at + 19..at + size];
        let end = (at + size) as u64;
        if kind == MARIADB_GTID_EVENT && data.len() >= 13 {
            if let Some(t) = open.take() {
                out.push(t);
            }
            let seq = u64::from_le_bytes(data[0..8].try_into().expect("8"));
            let domain = u32::from_le_bytes(data[8..12].try_into().expect("4"));
            standalone = data[12] & 1 != 0;
            open = Some(Transaction { gtid: format!("{domain}-{server}-{seq}"), start: at as u64, end, committed_at: ts });
        } else if let Some(t) = open.as_mut() {
            t.end = end;
            t.committed_at = ts;
            // A transactional group ends at its XID (or a `COMMIT` query, for non-transactional engines); a
            // standalone one (DDL) at its one query.
            let closes = kind == XID_EVENT || (kind == QUERY_EVENT && (standalone || query_text(data).is_some_and(|q| q.starts_with(b"COMMIT"))));
            if closes {
                let done = open.take().expect("open");
                out.push(done);
            }
        }
        at += size;
    }
    if let Some(t) = open {
        // Unterminated at the end of what is archived: not a whole transaction, not replayed.
        let _ = t;
    }
    Ok(out)
}

/// The statement of a QUERY event: after the post-header (thread id 4, exec time 4, schema length 1,
/// error code 2, status variables length 2), the status variables and the schema name with its NUL.
fn query_text(data: &[u8]) -> Option<&[u8]> {
    let db_len = *data.get(8)? as usize;
    let vars_len = u16::from_le_bytes(data.get(11..13)?.try_into().ok()?) as usize;
    data.get(13 + vars_len + db_len + 1..)
}

/// Where a point-in-time restore stops.
#[derive(Debug, Clone)]
pub enum StopAt {
    Latest,
    /// Every transaction committed at or before this instant (Unix ms; binlog timestamps are whole
    /// seconds, so the second it falls in is included).
    Time(i64),
    /// Up to and including this GTID (`domain-server-seq`).
    Gtid(String),
}

/// What a point-in-time restore replayed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub transactions: u64,
    pub files: Vec<String>,
    pub last_gtid: Option<String>,
    pub last_committed_at: Option<i64>,
}

/// The binlog replay from a backup's position to a stop, planned (the archive read, decrypted and checked
/// for holes, the stop found) before anything is restored, so a restore that cannot reach its target fails
/// before it writes.
pub struct ReplayPlan {
    /// Holds the decrypted binlogs until the replay.
    _dir: tempfile::TempDir,
    /// The files to replay, in order.
    files: Vec<(String, PathBuf)>,
    from_pos: u64,
    stop_pos: u64,
    last: Option<Transaction>,
    count: u64,
}

/// Archived binlogs by name: whether stored whole, and the object path.
type Archived = BTreeMap<String, ArchivedFile>;
/// Whether a binlog is stored whole, and its object path.
type ArchivedFile = (bool, String);

/// The archived files from backup `id`'s binlog file on, checked: the first is that file, and no number is
/// skipped after it.
fn covered_chain<'a>(archived: &'a Archived, from: &BinlogPosition, id: &str) -> Result<Vec<(&'a String, &'a ArchivedFile)>, String> {
    let (_, first_n) = split_name(&from.file).ok_or_else(|| format!("`{}` is not a binlog file name", from.file))?;
    let chain: Vec<(&String, &ArchivedFile)> = archived.iter().filter(|(n, _)| split_name(n).is_some_and(|(_, k)| k >= first_n)).collect();
    if chain.first().map(|(n, _)| n.as_str()) != Some(from.file.as_str()) {
        return Err(format!("the archive does not hold {}, where backup `{id}` stopped: nothing can be replayed from it", from.file));
    }
    for w in chain.windows(2) {
        let (a, b) = (split_name(w[0].0).map(|x| x.1).unwrap_or(0), split_name(w[1].0).map(|x| x.1).unwrap_or(0));
        if b != a + 1 {
            return Err(format!("the archive has a hole between {} and {}: a restore past it would lose transactions", w[0].0, w[1].0));
        }
    }
    Ok(chain)
}

/// Whether the binlogs archived under `prefix` continue backup `m` from its position without a hole: what
/// a point-in-time restore from it needs (listing only; nothing is read).
pub async fn archive_covers(repo: &Repository, m: &Manifest, prefix: &str) -> Result<(), String> {
    let from = m.binlog.clone().ok_or_else(|| format!("backup `{}` has no binlog position: it cannot start a point-in-time restore", m.id))?;
    let archived = archived_binlogs(repo, prefix).await?;
    covered_chain(&archived, &from, &m.id).map(|_| ())
}

/// Plans the replay of the binlogs archived under `prefix` from backup `m`'s position to `stop`; the
/// decrypted files go to a folder under `scratch`.
pub async fn plan_replay(repo: &Repository, m: &Manifest, key: &DataKey, prefix: &str, stop: &StopAt, scratch: &Path) -> Result<ReplayPlan, String> {
    let full_id = &m.id;
    m.check_key(key)?;
    let from = m.binlog.clone().ok_or_else(|| format!("backup `{full_id}` has no binlog position: it cannot start a point-in-time restore"))?;
    let archived = archived_binlogs(repo, prefix).await?;
    let chain = covered_chain(&archived, &from, full_id)?;
    // Decrypt the chain and find where to stop.
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new().prefix("binlogs-").tempdir_in(scratch).map_err(|e| format!("cannot make a folder: {e}"))?;
    let mut files: Vec<(String, PathBuf, Vec<Transaction>)> = Vec::new();
    for (i, (name, (complete, path))) in chain.iter().enumerate() {
        if !complete && i + 1 < chain.len() {
            return Err(format!("{name} is archived only in part, yet later files exist: the archive is inconsistent"));
        }
        let obj = repo.open(path).await?.ok_or_else(|| format!("{path} vanished from {}", repo.label()))?;
        let mut plain = Vec::new();
        crate::sealed::open(obj, &mut plain, key, None).await.map_err(|e| format!("{path} in {}: {e}", repo.label()))?;
        let tx = transactions(&plain).map_err(|e| format!("{path}: {e}"))?;
        let local = dir.path().join(name.as_str());
        tokio::fs::write(&local, &plain).await.map_err(|e| format!("cannot write {}: {e}", local.display()))?;
        files.push((name.to_string(), local, tx));
    }
    // The stop: the end of the last transaction to replay, and which file it is in.
    let mut stop_file = files.len();
    let mut stop_pos: Option<u64> = None;
    let mut last: Option<Transaction> = None;
    let mut count = 0u64;
    'files: for (i, (_, _, txs)) in files.iter().enumerate() {
        for t in txs {
            if i == 0 && t.start < from.pos {
                continue;
            }
            let past = match stop {
                StopAt::Latest => false,
                StopAt::Time(ms) => t.committed_at > ms.div_euclid(1000),
                StopAt::Gtid(_) => false,
            };
            if past {
                break 'files;
            }
            stop_file = i + 1;
            stop_pos = Some(t.end);
            last = Some(t.clone());
            count += 1;
            if let StopAt::Gtid(g) = stop
                && &t.gtid == g
            {
                break 'files;
            }
        }
    }
    if let StopAt::Gtid(g) = stop
        && last.as_ref().is_none_or(|t| &t.gtid != g)
    {
        return Err(format!("GTID {g} is not in the archive after backup `{full_id}`'s position"));
    }
    if let StopAt::Time(ms) = stop {
        let newest = files.iter().flat_map(|f| f.2.iter()).map(|t| t.committed_at).max().unwrap_or(0);
        if newest * 1000 < *ms - 999 {
            return Err(format!(
                "the archive reaches {} s, before the target {} ms: a restore would stop short of it (archiving lags, or the target is in the future)",
                newest, ms
            ));
        }
    }
    files.truncate(stop_file);
    Ok(ReplayPlan { _dir: dir, files: files.into_iter().map(|(n, p, _)| (n, p)).collect(), from_pos: from.pos, stop_pos: stop_pos.unwrap_or(0), last, count })
}

impl ReplayPlan {
    /// Replays the planned transactions into `server` (which holds the backup's state) and checks that
    /// the replay ended at the planned GTID.
    pub async fn apply(self, server: &Server) -> Result<Replayed, String> {
        if self.count == 0 {
            return Ok(Replayed { transactions: 0, files: Vec::new(), last_gtid: None, last_committed_at: None });
        }
        let streamed = replay(server, self.files.iter().map(|f| f.1.as_path()).collect(), self.from_pos, self.stop_pos).await?;
        let expected = self.last.as_ref().map(|t| t.gtid.clone());
        if streamed != expected {
            return Err(format!("the replay ended at GTID {streamed:?}, not at the computed {expected:?}: the restore is not trustworthy"));
        }
        Ok(Replayed {
            transactions: self.count,
            files: self.files.iter().map(|f| f.0.clone()).collect(),
            last_gtid: expected,
            last_committed_at: self.last.map(|t| t.committed_at),
        })
    }
}

/// Restores logical full backup `full_id` into `server`, then replays the binlogs archived under `prefix`
/// from the full backup's position to `stop`.
pub async fn restore_to_point(
    repo: &Repository,
    full_id: &str,
    key: &DataKey,
    prefix: &str,
    stop: &StopAt,
    server: &Server,
    scratch: &Path,
) -> Result<Replayed, String> {
    let m: Manifest = manifest(repo, full_id).await?;
    let plan = plan_replay(repo, &m, key, prefix, stop, scratch).await?;
    crate::mariadb_dump::restore(repo, full_id, key, server).await?;
    plan.apply(server).await
}

/// Pipes `mariadb-binlog --start-position … --stop-position … FILES` into `mariadb`; returns the last GTID
/// that went through.
async fn replay(server: &Server, files: Vec<&Path>, start: u64, stop: u64) -> Result<Option<String>, String> {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = crate::mariadb_dump::options_file(secrets.path(), server)?;
    let mut reader = tokio::process::Command::new("mariadb-binlog");
    reader.env("TZ", "UTC").arg(format!("--start-position={start}")).arg(format!("--stop-position={stop}")).args(&files);
    let mut reader = reader
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run mariadb-binlog (package mariadb-client): {e}"))?;
    let mut client = tokio::process::Command::new("mariadb")
        .arg(format!("--defaults-extra-file={}", options.display()))
        .arg("--binary-mode")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run mariadb: {e}"))?;
    let mut to_client = client.stdin.take().expect("piped");
    let reader_err = tokio::spawn(crate::repo::tail_of(reader.stderr.take().expect("piped")));
    let client_err = tokio::spawn(crate::repo::tail_of(client.stderr.take().expect("piped")));
    let mut lines = tokio::io::BufReader::new(reader.stdout.take().expect("piped"));
    let mut last_gtid = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = lines.read_until(b'\n', &mut line).await.map_err(|e| format!("reading mariadb-binlog: {e}"))?;
        if n == 0 {
            break;
        }
        // `#261204 17:20:01 server id 1  end_log_pos 1234 CRC32 0x… 	GTID 0-1-42 trans`
        if line.starts_with(b"#") {
            let text = String::from_utf8_lossy(&line);
            if let Some(g) = text.split("\tGTID ").nth(1).or_else(|| text.split(" GTID ").nth(1)) {
                last_gtid = g.split_whitespace().next().map(str::to_string);
            }
        }
        if to_client.write_all(&line).await.is_err() {
            break;
        }
    }
    drop(to_client);
    let mut rest = Vec::new();
    let _ = lines.read_to_end(&mut rest).await;
    let rs = reader.wait().await.map_err(|e| format!("mariadb-binlog: {e}"))?;
    let cs = client.wait().await.map_err(|e| format!("mariadb: {e}"))?;
    if !rs.success() {
        return Err(format!("mariadb-binlog exited with {rs}: {}", reader_err.await.unwrap_or_default()));
    }
    if !cs.success() {
        return Err(format!("replaying the binlogs failed ({cs}): {}", client_err.await.unwrap_or_default()));
    }
    Ok(last_gtid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_names_follow_each_other() {
        assert_eq!(split_name("mysql-bin.000012"), Some(("mysql-bin", 12)));
        assert_eq!(next_name("mysql-bin.999999").as_deref(), Some("mysql-bin.1000000"));
        assert_eq!(split_name("mysql-bin.index"), None);
    }

    fn event(ts: u32, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&ts.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&((19 + data.len()) as u32).to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(data);
        e
    }

    #[test]
    fn transactions_are_cut_at_gtid_events_and_end_at_their_commit() {
        let gtid = |seq: u64| {
            let mut d = seq.to_le_bytes().to_vec();
            d.extend_from_slice(&0u32.to_le_bytes());
            d.push(0);
            d
        };
        let mut f = MAGIC.to_vec();
        f.extend(event(100, 15, &[0; 40])); // format description
        f.extend(event(100, MARIADB_GTID_EVENT, &gtid(7)));
        // BEGIN: a query that does not end the transaction.
        let mut begin = vec![0u8; 8];
        begin.extend_from_slice(&[0, 0, 0, 0, 0]);
        begin.extend_from_slice(b"\0BEGIN");
        f.extend(event(100, QUERY_EVENT, &begin));
        f.extend(event(100, 30, &[1; 20])); // rows
        let end7 = {
            f.extend(event(101, XID_EVENT, &[0; 8]));
            f.len() as u64
        };
        f.extend(event(105, MARIADB_GTID_EVENT, &gtid(8)));
        f.extend(event(105, 30, &[1; 20]));
        let cut = f.len();
        f.extend(event(106, XID_EVENT, &[0; 8]));
        let t = transactions(&f).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].gtid.as_str(), t[0].end, t[0].committed_at), ("0-1-7", end7, 101));
        assert_eq!((t[1].gtid.as_str(), t[1].committed_at), ("0-1-8", 106));
        // A partial file that stops mid-transaction holds only the whole one.
        assert_eq!(transactions(&f[..cut + 5]).unwrap().len(), 1);
    }
}
