//! The local side of a file drop: period files growing batch by batch, their journal, and closing a
//! period (final names, then the manifest). Synchronous; the sink runs it on the blocking pool.
//!
//! Layout of `dir`:
//! - `NAME.csv[.gz]`, `MANIFEST.json`: closed periods (the local copy, kept for `keep`);
//! - `.sluice/open/NAME…`: files of periods still open (never seen under a final name);
//! - `.sluice/state.json`: the journal (below); `.sluice/outbox/`: one marker per manifest not yet uploaded;
//!   `.sluice/uploads.json`: the uploader's journal.
//!
//! **Exactly once.** A batch's bytes are appended to the open files and fsynced, then the journal — each
//! file's length and row count, and the stream cursor after the batch — is replaced atomically (temporary
//! file, fsync, rename, fsync of the folder). After a crash the open files are cut back to the journal's
//! lengths and the records up to its cursor are skipped (`Batch::applied`), so every row is in exactly one
//! file once. Closing a period is journaled first (its manifest text included), then done; a crash midway is
//! finished on the next start with the same bytes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_core::ChangeEvent;
use sluice_core::component::Record;
use sluice_pipeline::{Rejected, StreamCursor};

use super::encode::{Encoder, gzip_member};
use sluice_core::calendar::{Calendar, Period, rfc3339};

pub const ROWS_TOTAL: &str = "sluice_file_drop_rows_total";
pub const LATE_ROWS_TOTAL: &str = "sluice_file_drop_late_rows_total";
pub const PERIODS_CLOSED_TOTAL: &str = "sluice_file_drop_periods_closed_total";

/// What a spool is made with (from the configuration).
pub struct SpoolSettings {
    pub pipeline: String,
    pub sink: String,
    pub dir: PathBuf,
    pub calendar: Calendar,
    pub zone: String,
    pub encoder: Encoder,
    pub gzip: bool,
    /// `{db}`, `{table}`, `{period}`.
    pub name: String,
    /// `{period}`.
    pub manifest: String,
    pub grace_ms: i64,
    /// Whether closed periods are queued for upload.
    pub upload: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// The stream position after the last record written.
    cursor: Option<StreamCursor>,
    /// The earliest period not yet closed; `None` until the first row.
    first_open: Option<Period>,
    /// The newest commit time seen (capped at the wall clock).
    watermark_ms: i64,
    parts: Vec<Part>,
    closing: Option<Closing>,
}

/// One file of an open period.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    period: Period,
    /// `database.table`.
    table: String,
    file: String,
    /// CSV: the header; a row with other columns starts the next part.
    columns: Option<Vec<String>>,
    rows: u64,
    late_rows: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Closing {
    period: Period,
    files: Vec<String>,
    manifest_name: String,
    manifest: String,
}

/// A period's manifest, written last: its presence means every file it lists is complete.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub pipeline: String,
    pub sink: String,
    pub period: ManifestPeriod,
    pub format: String,
    pub compression: Option<String>,
    pub rows: u64,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestPeriod {
    pub label: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub table: String,
    pub rows: u64,
    /// Rows committed in an earlier, already closed period (see docs/sync.md, "Late rows").
    pub late_rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

pub struct Spool {
    s: SpoolSettings,
    work: PathBuf,
    journal: Journal,
    /// Wall-clock time of the last row (in memory: after a restart, the start).
    last_row_ms: i64,
}

type IoResult<T> = Result<T, String>;

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Spool {
    /// Opens the folder, finishes a close a crash interrupted, and cuts open files back to the journal.
    pub fn open(s: SpoolSettings) -> IoResult<Self> {
        let work = s.dir.join(".sluice");
        for d in [s.dir.clone(), work.join("open"), work.join("outbox")] {
            fs::create_dir_all(&d).map_err(io(format!("cannot create {}", d.display())))?;
        }
        let journal_path = work.join("state.json");
        let journal = match fs::read(&journal_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{} is damaged: {e}", journal_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Journal::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", journal_path.display())),
        };
        let mut spool = Self { s, work, journal, last_row_ms: now_ms() };
        spool.recover()?;
        Ok(spool)
    }

    fn recover(&mut self) -> IoResult<()> {
        if self.journal.closing.is_some() {
            self.finish_close()?;
        }
        let open = self.work.join("open");
        let known: BTreeMap<&str, u64> = self.journal.parts.iter().map(|p| (p.file.as_str(), p.bytes)).collect();
        for entry in fs::read_dir(&open).map_err(io(format!("cannot list {}", open.display())))? {
            let entry = entry.map_err(io("cannot list the open files"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            match known.get(name.as_str()) {
                // Written after the last journal: the records are sent again.
                None => fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))?,
                Some(&len) => {
                    let have = entry.metadata().map_err(io(format!("cannot stat {}", path.display())))?.len();
                    if have < len {
                        return Err(format!("{} has {have} bytes but its journal says {len}: the disk lost fsynced data", path.display()));
                    }
                    if have > len {
                        let f = OpenOptions::new().write(true).open(&path).map_err(io(format!("cannot open {}", path.display())))?;
                        f.set_len(len).and_then(|()| f.sync_all()).map_err(io(format!("cannot cut {} back", path.display())))?;
                    }
                }
            }
        }
        for part in &self.journal.parts {
            let path = open.join(&part.file);
            if !path.exists() {
                return Err(format!("{} is in the journal but missing", path.display()));
            }
        }
        Ok(())
    }

    pub fn cursor(&self) -> Option<&StreamCursor> {
        self.journal.cursor.as_ref()
    }

    /// Appends `records` (the batch minus what the files already hold; `first` is the index of the first in
    /// the batch), makes them durable, and journals `end`. Returns the records no file can take.
    pub fn write(&mut self, records: &[Record], first: usize, end: StreamCursor) -> IoResult<Vec<Rejected>> {
        let now = now_ms();
        let mut rejected = Vec::new();
        let mut pending: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        let mut rows = 0u64;
        let mut late = 0u64;
        for (i, r) in records.iter().enumerate() {
            let Record::Change(ev) = r else {
                rejected.push(Rejected { index: first + i, reason: "a file drop takes row changes, not metrics".into() });
                continue;
            };
            match self.place(ev, now, &mut pending) {
                Ok(was_late) => {
                    rows += 1;
                    late += u64::from(was_late);
                }
                Err(reason) => rejected.push(Rejected { index: first + i, reason }),
            }
        }
        let open = self.work.join("open");
        for (idx, bytes) in pending {
            let data = if self.s.gzip { gzip_member(&bytes).map_err(io("cannot compress"))? } else { bytes };
            let part = &mut self.journal.parts[idx];
            let path = open.join(&part.file);
            let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io(format!("cannot open {}", path.display())))?;
            f.write_all(&data).and_then(|()| f.sync_data()).map_err(io(format!("cannot write {}", path.display())))?;
            part.bytes += data.len() as u64;
        }
        if rows > 0 {
            self.last_row_ms = now;
        }
        self.journal.cursor = Some(end);
        self.save()?;
        metrics::counter!(ROWS_TOTAL, "pipeline" => self.s.pipeline.clone(), "sink" => self.s.sink.clone()).increment(rows);
        if late > 0 {
            metrics::counter!(LATE_ROWS_TOTAL, "pipeline" => self.s.pipeline.clone(), "sink" => self.s.sink.clone()).increment(late);
        }
        Ok(rejected)
    }

    /// Encodes one change into its part's pending bytes; `Ok(true)` when it is late.
    fn place(&mut self, ev: &ChangeEvent, now: i64, pending: &mut BTreeMap<usize, Vec<u8>>) -> Result<bool, String> {
        // A commit time ahead of this host's clock counts as now: a skewed source cannot open future periods.
        let ts = ev.commit_ts_ms.min(now);
        let mut period = self.s.calendar.containing(ts);
        let first_open = self.journal.first_open.get_or_insert_with(|| period.clone()).clone();
        let late = period.end_ms <= first_open.start_ms;
        if late {
            period = first_open;
        }
        let table = if ev.table.is_empty() { format!("{}._ddl", ev.database) } else { format!("{}.{}", ev.database, ev.table) };
        let columns = self.s.encoder.columns(ev);
        let idx = match self.journal.parts.iter().rposition(|p| p.period.start_ms == period.start_ms && p.table == table) {
            Some(i) if columns.is_none() || self.journal.parts[i].columns == columns => i,
            found => {
                let seq = found.map_or(1, |_| self.journal.parts.iter().filter(|p| p.period.start_ms == period.start_ms && p.table == table).count() + 1);
                let file = self.file_name(ev, &period, seq);
                let mut header = Vec::new();
                if let Some(cols) = &columns {
                    self.s.encoder.header(cols, &mut header);
                }
                self.journal.parts.push(Part { period: period.clone(), table, file, columns, rows: 0, late_rows: 0, bytes: 0 });
                let i = self.journal.parts.len() - 1;
                pending.insert(i, header);
                i
            }
        };
        let buf = pending.entry(idx).or_default();
        self.s.encoder.write(ev, buf)?;
        let part = &mut self.journal.parts[idx];
        part.rows += 1;
        part.late_rows += u64::from(late);
        self.journal.watermark_ms = self.journal.watermark_ms.max(ts);
        Ok(late)
    }

    fn file_name(&self, ev: &ChangeEvent, period: &Period, seq: usize) -> String {
        let table = if ev.table.is_empty() { "_ddl" } else { &ev.table };
        let base = self.s.name.replace("{db}", &safe(&ev.database)).replace("{table}", &safe(table)).replace("{period}", &period.label);
        let seq = if seq > 1 { format!("-{seq}") } else { String::new() };
        let gz = if self.s.gzip { ".gz" } else { "" };
        format!("{base}{seq}.{}{gz}", self.s.encoder.format.extension())
    }

    /// Closes every period that is due: its end plus the grace time has passed in commit time (a later
    /// commit was seen), or on the wall clock with no row arriving for the grace time. A period without rows
    /// gets a manifest with no files. Returns how many closed.
    pub fn close_due(&mut self) -> IoResult<usize> {
        let mut closed = 0;
        // Bounded: after a long stop, the periods of the gap close a thousand at a time.
        while closed < 1000 {
            let Some(p) = self.journal.first_open.clone() else { break };
            let now = now_ms();
            let due_at = p.end_ms.saturating_add(self.s.grace_ms);
            let due = self.journal.watermark_ms >= due_at || (now >= due_at && now - self.last_row_ms >= self.s.grace_ms);
            if !due {
                break;
            }
            self.close(p)?;
            closed += 1;
        }
        Ok(closed)
    }

    fn close(&mut self, period: Period) -> IoResult<()> {
        let (parts, rest): (Vec<Part>, Vec<Part>) = std::mem::take(&mut self.journal.parts).into_iter().partition(|p| p.period.start_ms == period.start_ms);
        self.journal.parts = rest;
        let open = self.work.join("open");
        let mut files = Vec::with_capacity(parts.len());
        for p in &parts {
            let path = open.join(&p.file);
            files.push(ManifestFile {
                name: p.file.clone(),
                table: p.table.clone(),
                rows: p.rows,
                late_rows: p.late_rows,
                bytes: p.bytes,
                sha256: sha256_of(&path)?,
            });
        }
        let manifest = Manifest {
            version: 1,
            pipeline: self.s.pipeline.clone(),
            sink: self.s.sink.clone(),
            period: ManifestPeriod { label: period.label.clone(), start: rfc3339(period.start_ms, &self.s.zone), end: rfc3339(period.end_ms, &self.s.zone) },
            format: self.s.encoder.format.extension().to_string(),
            compression: self.s.gzip.then(|| "gzip".to_string()),
            rows: files.iter().map(|f| f.rows).sum(),
            files,
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| format!("cannot encode the manifest: {e}"))? + "\n";
        self.journal.closing = Some(Closing {
            period: period.clone(),
            files: parts.into_iter().map(|p| p.file).collect(),
            manifest_name: self.s.manifest.replace("{period}", &period.label),
            manifest: text,
        });
        self.journal.first_open = Some(self.s.calendar.next(&period));
        self.save()?;
        self.finish_close()?;
        metrics::counter!(PERIODS_CLOSED_TOTAL, "pipeline" => self.s.pipeline.clone(), "sink" => self.s.sink.clone()).increment(1);
        Ok(())
    }

    /// Moves a closing period's files to their final names, then writes its manifest, then queues it for
    /// upload. Every step can be repeated.
    fn finish_close(&mut self) -> IoResult<()> {
        let Some(c) = self.journal.closing.clone() else { return Ok(()) };
        let open = self.work.join("open");
        for f in &c.files {
            let (from, to) = (open.join(f), self.s.dir.join(f));
            if from.exists() {
                fs::rename(&from, &to).map_err(io(format!("cannot move {} to {}", from.display(), to.display())))?;
            } else if !to.exists() {
                return Err(format!("{} is neither open nor closed", f));
            }
        }
        sync_dir(&self.s.dir)?;
        write_atomic(&self.s.dir, &c.manifest_name, c.manifest.as_bytes(), &open)?;
        if self.s.upload {
            let marker = self.work.join("outbox").join(format!("{:020}_{}", c.period.start_ms.max(0), c.manifest_name));
            File::create(&marker).map_err(io(format!("cannot queue {}", marker.display())))?;
            sync_dir(&self.work.join("outbox"))?;
        }
        self.journal.closing = None;
        self.save()
    }

    fn save(&self) -> IoResult<()> {
        let bytes = serde_json::to_vec(&self.journal).map_err(|e| format!("cannot encode the journal: {e}"))?;
        write_atomic(&self.work, "state.json", &bytes, &self.work)
    }
}

/// A table or database name as a file name part: no path separators, no leading dot.
fn safe(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    s
}

pub fn sha256_of(path: &Path) -> IoResult<String> {
    let mut f = File::open(path).map_err(io(format!("cannot read {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes `dir/name` whole or not at all: a temporary file in `tmp_dir` (same file system), fsync, rename,
/// fsync of `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], tmp_dir: &Path) -> IoResult<()> {
    let tmp = tmp_dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(format!("cannot write {}", tmp.display())))?;
    let to = dir.join(name);
    fs::rename(&tmp, &to).map_err(io(format!("cannot move {} to {}", tmp.display(), to.display())))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> IoResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("cannot sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sluice_core::change::{Column, Row};
    use sluice_core::resume::LsnPosition;
    use sluice_core::{Operation, Origin, Position, ResumePosition, Value};

    use super::*;
    use crate::sinks::file_drop::encode::Format;
    use crate::sinks::message::Payload;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn row(cols: &[&str], id: i64, at: &str) -> Record {
        let columns: Arc<[Column]> = cols.iter().map(|n| Column { name: (*n).into(), primary_key: *n == "id" }).collect::<Vec<_>>().into();
        let mut values = vec![Value::Int(id)];
        values.resize(cols.len(), Value::String("x".into()));
        let origin = Origin { commit_ts_ms: ms(at), txn: None, position: Position::Lsn { lsn: id as u64 } };
        Record::Change(Arc::new(ChangeEvent::row("p".into(), "shop".into(), "orders".into(), Operation::Insert, None, Some(Row { columns, values }), origin)))
    }

    fn cursor(n: u64) -> StreamCursor {
        StreamCursor { commit: Some(ResumePosition::Lsn(LsnPosition { lsn: n })), offset: 0 }
    }

    fn spool(dir: &Path) -> Spool {
        Spool::open(SpoolSettings {
            pipeline: "p".into(),
            sink: "drop".into(),
            dir: dir.to_path_buf(),
            calendar: Calendar::every(Duration::from_secs(3600), "UTC").unwrap(),
            zone: "UTC".into(),
            encoder: Encoder { format: Format::Csv, payload: Payload::Envelope, meta_columns: false },
            gzip: false,
            name: "{db}.{table}_{period}".into(),
            manifest: "manifest_{period}.json".into(),
            grace_ms: 60_000,
            upload: true,
        })
        .unwrap()
    }

    fn manifest(dir: &Path, label: &str) -> Manifest {
        serde_json::from_slice(&fs::read(dir.join(format!("manifest_{label}.json"))).unwrap()).unwrap()
    }

    #[test]
    fn a_period_closes_when_a_later_commit_passes_its_grace_and_its_manifest_is_exact() {
        let d = tempfile::tempdir().unwrap();
        let mut s = spool(d.path());
        s.write(&[row(&["id", "v"], 1, "2025-06-01T10:10:00Z"), row(&["id", "v"], 2, "2025-06-01T10:59:00Z")], 0, cursor(2)).unwrap();
        // 11:00:30 is inside the grace minute: 10:00 stays open.
        s.write(&[row(&["id", "v"], 3, "2025-06-01T11:00:30Z")], 0, cursor(3)).unwrap();
        assert_eq!(s.close_due().unwrap(), 0);
        s.write(&[row(&["id", "v"], 4, "2025-06-01T11:01:00Z")], 0, cursor(4)).unwrap();
        assert_eq!(s.close_due().unwrap(), 1);
        let m = manifest(d.path(), "20250601T1000Z");
        assert_eq!((m.rows, m.files.len(), m.period.start.as_str(), m.period.end.as_str()), (2, 1, "2025-06-01T10:00:00Z", "2025-06-01T11:00:00Z"));
        let f = &m.files[0];
        assert_eq!(f.name, "shop.orders_20250601T1000Z.csv");
        let text = fs::read_to_string(d.path().join(&f.name)).unwrap();
        assert_eq!(text, "id,v\r\n1,x\r\n2,x\r\n");
        assert_eq!((f.bytes, f.sha256.clone()), (text.len() as u64, sha256_of(&d.path().join(&f.name)).unwrap()));
        // The open 11:00 file is not under its final name, and the period is queued for upload.
        assert!(!d.path().join("shop.orders_20250601T1100Z.csv").exists());
        assert_eq!(fs::read_dir(d.path().join(".sluice/outbox")).unwrap().count(), 1);
    }

    #[test]
    fn a_restart_cuts_open_files_back_to_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let mut s = spool(d.path());
        s.write(&[row(&["id", "v"], 1, "2025-06-01T10:10:00Z")], 0, cursor(1)).unwrap();
        drop(s);
        // A crash after bytes were appended but before the journal: they must go.
        let open = d.path().join(".sluice/open/shop.orders_20250601T1000Z.csv");
        fs::OpenOptions::new().append(true).open(&open).unwrap().write_all(b"2,x\r\n").unwrap();
        fs::write(d.path().join(".sluice/open/shop.other_20250601T1000Z.csv"), "id\r\n9\r\n").unwrap();
        let s = spool(d.path());
        assert_eq!(fs::read_to_string(&open).unwrap(), "id,v\r\n1,x\r\n");
        assert!(!d.path().join(".sluice/open/shop.other_20250601T1000Z.csv").exists());
        assert_eq!(s.cursor(), Some(&cursor(1)));
    }

    #[test]
    fn late_rows_go_to_the_open_period_counted_and_new_columns_start_a_new_part() {
        let d = tempfile::tempdir().unwrap();
        let mut s = spool(d.path());
        s.write(&[row(&["id", "v"], 1, "2025-06-01T10:10:00Z"), row(&["id", "v"], 2, "2025-06-01T11:30:00Z")], 0, cursor(2)).unwrap();
        assert_eq!(s.close_due().unwrap(), 1);
        // 10:20 arrives after 10:00 closed; then a column is added.
        s.write(&[row(&["id", "v"], 3, "2025-06-01T10:20:00Z"), row(&["id", "v", "w"], 4, "2025-06-01T11:40:00Z")], 0, cursor(4)).unwrap();
        s.write(&[row(&["id", "v"], 5, "2025-06-01T12:05:00Z")], 0, cursor(5)).unwrap();
        assert_eq!(s.close_due().unwrap(), 1);
        let m = manifest(d.path(), "20250601T1100Z");
        let files: Vec<(String, u64, u64)> = m.files.iter().map(|f| (f.name.clone(), f.rows, f.late_rows)).collect();
        assert_eq!(files, vec![("shop.orders_20250601T1100Z.csv".to_string(), 2, 1), ("shop.orders_20250601T1100Z-2.csv".to_string(), 1, 0)]);
        assert_eq!(fs::read_to_string(d.path().join("shop.orders_20250601T1100Z-2.csv")).unwrap(), "id,v,w\r\n4,x,x\r\n");
    }
}
