//! Streaming the binlog with `mysql_async`, reconnecting with backoff, and converting rows into changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use sluice_core::change::{Column, Row};
use sluice_core::resume::{BinlogPosition, GtidState};
use sluice_core::{ChangeEvent, Engine, Operation, Origin, Position, ResumePosition, Value};
use sluice_engines::ConnectSpec;
use sluice_pipeline::{Source, SourceError, SourceItem};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{MysqlBinlogConfig, StartFrom, glob_match};
use super::decode::TablePlan;
use super::rowdecode::Cursor;

/// MariaDB's own event types, which mysql_common does not decode (see `../shared/notes/cdc-spike.md`).
const MARIADB_GTID_EVENT: u8 = 0xA2;
/// MariaDB GTID event flag: the transaction has no XID (DDL, non-transactional engines).
const FL_STANDALONE: u8 = 1;
/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested position is gone (purged) or invalid.
const ER_BINLOG_READ: u16 = 1236;
const AUTH_CODES: &[u16] = &[1044, 1045, 1698];

pub struct MysqlBinlogSource {
    name: Arc<str>,
    config: MysqlBinlogConfig,
    connection: ConnectSpec,
    opts: Opts,
    reconnect_max: Duration,
    /// Captured whatever `include` says: shaping reads it from the stream.
    config_table: Option<(String, String)>,
}

pub(super) use crate::sources::reconnect::Stop;
use crate::sources::reconnect::{Backoff, Next};

impl MysqlBinlogSource {
    pub fn new(name: &str, config: MysqlBinlogConfig) -> Result<Self, String> {
        let connection = crate::sources::connection(&config.url, config.connection.as_ref(), &[Engine::Mysql, Engine::Mariadb])?;
        let opts = Opts::from(sluice_engines::connect::mysql_opts(&connection));
        let reconnect_max = config.reconnect_max;
        Ok(Self { name: name.into(), config, connection, opts, reconnect_max, config_table: None })
    }

    pub fn with_config_table(mut self, table: Option<(String, String)>) -> Self {
        self.config_table = table;
        self
    }

    pub(super) fn config(&self) -> &MysqlBinlogConfig {
        &self.config
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    fn captures_database(&self, db: &str) -> bool {
        self.config.include.is_empty() || self.config.include.iter().any(|p| glob_match(p.split('.').next().unwrap_or(p), db))
    }

    pub(super) fn captured(&self, db: &str, table: &str, extra: Option<&(String, String)>) -> bool {
        if extra.is_some_and(|(d, t)| d == db && t == table) {
            return true;
        }
        let full = format!("{db}.{table}");
        (self.config.include.is_empty() || self.config.include.iter().any(|p| glob_match(p, &full)))
            && !self.config.exclude.iter().any(|p| glob_match(p, &full))
    }

    /// A connection through the egress policy (checked at every connect), TLS as the spec says.
    pub(super) async fn connect(&self) -> Result<Conn, Stop> {
        let failed = |f| Stop::from_connect(f, "connect");
        sluice_engines::connect::resolve(&self.connection).await.map_err(failed)?;
        Conn::new(self.opts.clone()).await.map_err(|e| failed(sluice_engines::connect::mysql_failure(&e, &self.connection)))
    }

    /// The position to start from when there is no checkpoint.
    async fn initial_position(&self, conn: &mut Conn, mariadb: bool) -> Result<BinlogPosition, Stop> {
        let q = |e: mysql_async::Error| classify(&e, "read the server's binlog position");
        match &self.config.start {
            StartFrom::Now => {
                let row: Option<(String, u64)> = conn
                    .query_first("SHOW MASTER STATUS")
                    .await
                    .map_err(q)?
                    .map(|r: mysql_async::Row| (r.get::<String, _>(0).unwrap_or_default(), r.get::<u64, _>(1).unwrap_or(4)));
                let Some((file, pos)) = row else {
                    return Err(Stop::Fatal(SourceError::new("the server has no binary log (SHOW MASTER STATUS is empty): start it with --log-bin")));
                };
                let gtid =
                    if mariadb { conn.query_first::<String, _>("SELECT @@gtid_binlog_pos").await.map_err(q)?.unwrap_or_default() } else { String::new() };
                Ok(BinlogPosition { file, pos, gtid })
            }
            StartFrom::Earliest => {
                let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.map_err(q)?;
                let file = logs.first().and_then(|r| r.get::<String, _>(0)).ok_or_else(|| Stop::Fatal(SourceError::new("the server lists no binary logs")))?;
                Ok(BinlogPosition { file, pos: 4, gtid: String::new() })
            }
            StartFrom::Position { file, pos } => Ok(BinlogPosition { file: file.clone(), pos: *pos, gtid: String::new() }),
            StartFrom::Gtid(gtid) => {
                if GtidState::parse(gtid).is_none() {
                    return Err(Stop::Fatal(SourceError::new(format!("start gtid `{gtid}` is not a MariaDB GTID list like 0-1-42"))));
                }
                Ok(BinlogPosition { file: String::new(), pos: 4, gtid: gtid.clone() })
            }
        }
    }

    /// Names the oldest binlog still on the server, for the purged-position error.
    async fn oldest_binlog(&self) -> String {
        let Ok(mut conn) = self.connect().await else { return "unknown".into() };
        let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap_or_default();
        let _ = conn.disconnect().await;
        logs.first().and_then(|r| r.get::<String, _>(0)).map(|f| format!("{f}:4")).unwrap_or_else(|| "unknown".into())
    }

    async fn column_names(&self, db: &str, table: &str) -> Option<Vec<String>> {
        let mut conn = self.connect().await.ok()?;
        let names: Vec<String> = conn
            .exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (db, table))
            .await
            .ok()?;
        let _ = conn.disconnect().await;
        Some(names)
    }

    /// One connection's worth of streaming. Updates `pos` at every sent commit.
    async fn stream_once(
        &self,
        pos: &mut Option<BinlogPosition>,
        config_table: Option<&(String, String)>,
        out: &mpsc::Sender<SourceItem>,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        let mut conn = self.connect().await?;
        let version: String = conn.query_first("SELECT VERSION()").await.map_err(|e| classify(&e, "query"))?.unwrap_or_default();
        let mariadb = version.contains("MariaDB");
        if pos.is_none() {
            let start = self.initial_position(&mut conn, mariadb).await?;
            // The start, pinned: `now` must mean the position of the first start, not of a restart after a
            // crash that came before the first checkpoint (the changes in between would be skipped).
            let commit_ts_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            send(out, SourceItem::Commit { resume: ResumePosition::Binlog(start.clone()), commit_ts_ms }).await?;
            *pos = Some(start);
        }
        let start = pos.clone().expect("set above");
        // Raw MariaDB GTID events need this capability (see the CDC spike notes).
        conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(|e| classify(&e, "set replication capability"))?;
        let use_gtid = mariadb && !start.gtid.is_empty();
        if use_gtid {
            conn.query_drop(format!(
                "SET @slave_connect_state = '{}', @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0",
                start.gtid.replace('\'', "")
            ))
            .await
            .map_err(|e| classify(&e, "set GTID start"))?;
        }
        let file_bytes = if use_gtid { Vec::new() } else { start.file.clone().into_bytes() };
        let request = BinlogStreamRequest::new(self.config.server_id).with_filename(&file_bytes).with_pos(if use_gtid { 4 } else { start.pos });
        let mut stream = conn.get_binlog_stream(request).await.map_err(|e| classify(&e, "start the binlog stream"))?;
        tracing::info!(source = %self.name, file = %start.file, pos = start.pos, gtid = %start.gtid, "binlog stream started");

        let mut state = StreamState {
            track_gtid: !start.gtid.is_empty(),
            file: start.file.clone(),
            gtid: GtidState::parse(&start.gtid).unwrap_or_default(),
            current_gtid: None,
            standalone: false,
            in_tx_rows: false,
            commit_ts_ms: 0,
            plans: HashMap::new(),
            captured: HashMap::new(),
            schema_names: HashMap::new(),
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Err(Stop::Shutdown),
                n = stream.next() => n,
            };
            let event = match next {
                None => return Err(Stop::Retry("the server closed the binlog stream".into())),
                Some(Err(e)) => {
                    if let mysql_async::Error::Server(se) = &e
                        && se.code == ER_BINLOG_READ
                    {
                        let oldest = self.oldest_binlog().await;
                        let at = if use_gtid { format!("GTID {}", start.gtid) } else { format!("{}:{}", start.file, start.pos) };
                        return Err(Stop::Fatal(SourceError::with_source(
                            format!(
                                "the binlog position {at} is no longer available on the server (purged or invalid); the oldest available is {oldest}. Reset the checkpoint or start from a newer position"
                            ),
                            e,
                        )));
                    }
                    return Err(classify(&e, "read the binlog"));
                }
                Some(Ok(ev)) => ev,
            };
            self.handle_event(&event, &mut stream, &mut state, pos, config_table, out).await?;
        }
    }

    async fn handle_event(
        &self,
        event: &Event,
        stream: &mut mysql_async::BinlogStream,
        st: &mut StreamState,
        pos: &mut Option<BinlogPosition>,
        config_table: Option<&(String, String)>,
        out: &mpsc::Sender<SourceItem>,
    ) -> Result<(), Stop> {
        let header = event.header();
        let end_pos = header.log_pos() as u64;
        tracing::trace!(source = %self.name, event_type = header.event_type_raw(), end_pos, "binlog event");
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let d = event.data();
            if d.len() >= 13 {
                let seq = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
                let domain = u32::from_le_bytes(d[8..12].try_into().expect("4 bytes"));
                st.current_gtid = Some((domain, header.server_id(), seq));
                st.standalone = d[12] & FL_STANDALONE != 0;
            }
            st.commit_ts_ms = header.timestamp() as i64 * 1000;
            return Ok(());
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Stop::Retry(format!("cannot decode a binlog event at {}:{end_pos}: {e}", st.file))),
        };
        match data {
            EventData::RotateEvent(r) => {
                // The first, fake rotate carries the CRC32 after the name: keep `name.NNNNNN` only.
                st.file = clean_binlog_name(&r.name());
                if (end_pos != 0 || pos.as_ref().is_some_and(|p| p.file.is_empty()))
                    && let Some(p) = pos.as_mut()
                {
                    p.file = st.file.clone();
                    p.pos = r.position();
                }
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    st.in_tx_rows = false;
                } else if trimmed.eq_ignore_ascii_case("COMMIT") {
                    self.commit(st, end_pos, header.timestamp(), pos, out).await?;
                } else if !trimmed.starts_with('#') {
                    // DDL (or a statement-format change, which row capture cannot see).
                    let db = q.schema().to_string();
                    let origin = Origin {
                        commit_ts_ms: header.timestamp() as i64 * 1000,
                        txn: st.gtid_text(),
                        position: Position::Binlog { file: st.file.as_str().into(), pos: end_pos, gtid: st.gtid_text(), row: 0 },
                    };
                    let ev = ChangeEvent::ddl(self.name.clone(), db.as_str().into(), "".into(), trimmed.into(), origin);
                    // Cached plans and names may describe the old shape of an altered table.
                    st.plans.clear();
                    st.captured.clear();
                    st.schema_names.clear();
                    if self.captures_database(&db) {
                        send(out, SourceItem::Change(ev)).await?;
                    }
                    if st.standalone || !st.in_tx_rows {
                        self.commit(st, end_pos, header.timestamp(), pos, out).await?;
                    }
                }
            }
            EventData::XidEvent(_) => {
                self.commit(st, end_pos, header.timestamp(), pos, out).await?;
            }
            EventData::TableMapEvent(tme) => {
                // Plans are rebuilt per table map: a table's shape may have changed since.
                st.plans.remove(&tme.table_id());
                let (db, table) = (tme.database_name().to_string(), tme.table_name().to_string());
                st.captured.insert(tme.table_id(), self.captured(&db, &table, config_table));
            }
            EventData::RowsEvent(re) => {
                let table_id = re.table_id();
                if !st.captured.get(&table_id).copied().unwrap_or(false) {
                    return Ok(());
                }
                let Some(tme) = stream.get_tme(table_id) else {
                    return Err(Stop::Retry(format!("rows event for unknown table id {table_id} at {}:{end_pos}", st.file)));
                };
                if !st.plans.contains_key(&table_id) {
                    let fallback = if TablePlan::has_names(tme) {
                        None
                    } else {
                        // binlog_row_metadata=MINIMAL: names from information_schema, kept until the next DDL.
                        let key = (tme.database_name().to_string(), tme.table_name().to_string());
                        if !st.schema_names.contains_key(&key) {
                            let names = self.column_names(&key.0, &key.1).await.unwrap_or_default();
                            st.schema_names.insert(key.clone(), names);
                        }
                        st.schema_names.get(&key).cloned()
                    };
                    st.plans.insert(table_id, Arc::new(TablePlan::new(tme, fallback.as_deref())));
                }
                let plan = st.plans[&table_id].clone();
                let op = match &re {
                    RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Operation::Insert,
                    RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) | RowsEventData::PartialUpdateRowsEvent(_) => Operation::Update,
                    RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Operation::Delete,
                };
                let start_pos = end_pos.saturating_sub(header.event_size() as u64);
                let file: Arc<str> = st.file.as_str().into();
                let gtid = st.gtid_text();
                st.in_tx_rows = true;
                let commit_ts_ms = st.commit_ts_ms.max(header.timestamp() as i64 * 1000);
                let make = |i: usize, before: Option<Row>, after: Option<Row>| {
                    let origin = Origin {
                        commit_ts_ms,
                        txn: gtid.clone(),
                        position: Position::Binlog { file: file.clone(), pos: start_pos, gtid: gtid.clone(), row: i as u32 },
                    };
                    ChangeEvent::row(self.name.clone(), plan.database.clone(), plan.table.clone(), op, before, after, origin)
                };
                if plan.native {
                    let before_bits: Option<Vec<bool>> = re.columns_before_image().map(|b| b.iter().map(|x| *x).collect());
                    let after_bits: Option<Vec<bool>> = re.columns_after_image().map(|b| b.iter().map(|x| *x).collect());
                    let mut c = Cursor { data: re.rows_data(), at: 0 };
                    let mut i = 0;
                    while !c.is_empty() {
                        let bad = |e: super::rowdecode::Truncated| {
                            Stop::Retry(format!("cannot decode a row of {}.{} at {file}:{start_pos}: {e}", plan.database, plan.table))
                        };
                        let before = match &before_bits {
                            Some(b) => Some(plan.decode_image(&mut c, b).map_err(bad)?),
                            None => None,
                        };
                        let after = match &after_bits {
                            Some(b) => Some(plan.decode_image(&mut c, b).map_err(bad)?),
                            None => None,
                        };
                        send(out, SourceItem::Change(make(i, before, after))).await?;
                        i += 1;
                    }
                } else {
                    for (i, row) in re.rows(tme).enumerate() {
                        let (before, after) = row.map_err(|e| Stop::Retry(format!("cannot decode a row at {file}:{start_pos}: {e}")))?;
                        let conv = |r: Option<mysql_async::binlog::row::BinlogRow>| r.map(|mut r| to_row(&plan, &mut r));
                        send(out, SourceItem::Change(make(i, conv(before), conv(after)))).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn commit(&self, st: &mut StreamState, end_pos: u64, ts: u32, pos: &mut Option<BinlogPosition>, out: &mpsc::Sender<SourceItem>) -> Result<(), Stop> {
        st.commit_ts_ms = st.commit_ts_ms.max(ts as i64 * 1000);
        if let Some((d, s, n)) = st.current_gtid.take() {
            st.gtid.set(d, s, n);
        }
        st.in_tx_rows = false;
        st.standalone = false;
        let p = BinlogPosition { file: st.file.clone(), pos: end_pos, gtid: if st.track_gtid { st.gtid.render() } else { String::new() } };
        send(out, SourceItem::Commit { resume: ResumePosition::Binlog(p.clone()), commit_ts_ms: st.commit_ts_ms }).await?;
        st.commit_ts_ms = 0;
        *pos = Some(p);
        Ok(())
    }
}

struct StreamState {
    /// Whether resume positions carry the GTID state: only when it was complete at the start (a partial
    /// list would make MariaDB replay the missing domains from their first binlog).
    track_gtid: bool,
    file: String,
    gtid: GtidState,
    current_gtid: Option<(u32, u32, u64)>,
    standalone: bool,
    in_tx_rows: bool,
    commit_ts_ms: i64,
    plans: HashMap<u64, Arc<TablePlan>>,
    captured: HashMap<u64, bool>,
    /// Column names read from information_schema for tables whose table maps carry none.
    schema_names: HashMap<(String, String), Vec<String>>,
}

impl StreamState {
    fn gtid_text(&self) -> Option<Arc<str>> {
        self.current_gtid.map(|(d, s, n)| Arc::from(format!("{d}-{s}-{n}")))
    }
}

fn to_row(plan: &TablePlan, r: &mut mysql_async::binlog::row::BinlogRow) -> Row {
    let n = plan.columns.len();
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(plan.convert(i, r.take(i)));
    }
    Row { columns: plan.columns.clone(), values }
}

async fn send(out: &mpsc::Sender<SourceItem>, item: SourceItem) -> Result<(), Stop> {
    // A closed channel means the pipeline is stopping.
    out.send(item).await.map_err(|_| Stop::Shutdown)
}

fn clean_binlog_name(raw: &str) -> String {
    // `mysql-bin.000002` followed, on the fake rotate, by 4 checksum bytes.
    match raw.rfind('.') {
        Some(dot) => {
            let digits: String = raw[dot + 1..].chars().take_while(|c| c.is_ascii_digit()).collect();
            format!("{}.{}", &raw[..dot], digits)
        }
        None => raw.to_string(),
    }
}

pub(super) fn classify(e: &mysql_async::Error, doing: &str) -> Stop {
    match e {
        mysql_async::Error::Server(se) if AUTH_CODES.contains(&se.code) => {
            Stop::Fatal(SourceError::new(format!("cannot {doing}: the server refused the user: {e}")))
        }
        mysql_async::Error::Server(se) if se.code == 1227 => {
            Stop::Fatal(SourceError::new(format!("cannot {doing}: the user lacks a privilege (REPLICATION SLAVE and REPLICATION CLIENT are needed): {e}")))
        }
        other => Stop::Retry(format!("cannot {doing}: {other}")),
    }
}

impl Source for MysqlBinlogSource {
    fn run<'a>(
        &'a mut self,
        resume: Option<ResumePosition>,
        // The binlog needs no confirmation: the server keeps files by its own retention.
        _committed: tokio::sync::watch::Receiver<Option<ResumePosition>>,
        out: mpsc::Sender<SourceItem>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let mut pos: Option<BinlogPosition> = match resume {
                None => None,
                Some(ResumePosition::Binlog(p)) => Some(p),
                Some(other) => return Err(SourceError::new(format!("the saved checkpoint ({other}) is not a binlog position"))),
            };
            let config_table = self.config_table.clone();
            let mut backoff = Backoff::new(self.reconnect_max);
            if pos.is_none() && !self.config.snapshot.is_empty() {
                // A snapshot is not resumable: a failed one starts over (rows already sent repeat).
                loop {
                    match backoff.settle(&self.name, "initial snapshot", self.snapshot(&out).await, &shutdown).await? {
                        Next::Done(p) => break pos = Some(p),
                        Next::Stop => return Ok(()),
                        Next::Again => {}
                    }
                }
            }
            loop {
                let attempt = self.stream_once(&mut pos, config_table.as_ref(), &out, &shutdown).await;
                if let Next::Done(()) | Next::Stop = backoff.settle(&self.name, "", attempt, &shutdown).await? {
                    return Ok(());
                }
            }
        })
    }

    fn read_table<'a>(&'a self, database: &'a str, table: &'a str) -> BoxFuture<'a, Result<Vec<Row>, SourceError>> {
        Box::pin(async move {
            let mut conn = match self.connect().await {
                Ok(c) => c,
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Retry(why)) => return Err(SourceError::new(format!("cannot read {database}.{table}: {why}"))),
                Err(Stop::Shutdown) => return Err(SourceError::new("stopped")),
            };
            let q = format!("SELECT * FROM `{}`.`{}`", database.replace('`', "``"), table.replace('`', "``"));
            let rows: Vec<mysql_async::Row> = conn.query(q).await.map_err(|e| SourceError::with_source(format!("cannot read {database}.{table}"), e))?;
            let _ = conn.disconnect().await;
            let Some(first) = rows.first() else { return Ok(Vec::new()) };
            let columns: Arc<[Column]> = first
                .columns_ref()
                .iter()
                .map(|c| Column { name: c.name_str().as_ref().into(), primary_key: c.flags().contains(mysql_async::consts::ColumnFlags::PRI_KEY_FLAG) })
                .collect::<Vec<_>>()
                .into();
            Ok(rows
                .into_iter()
                .map(|r| Row { columns: columns.clone(), values: r.unwrap_raw().into_iter().map(|v| v.map(text_value).unwrap_or(Value::Null)).collect() })
                .collect())
        })
    }
}

/// Values of a plain query (text protocol): numbers come back as text, which shaping parses.
fn text_value(v: mysql_async::Value) -> Value {
    match v {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s.into()),
            Err(e) => Value::Bytes(e.into_bytes().into()),
        },
        mysql_async::Value::Int(i) => Value::Int(i),
        mysql_async::Value::UInt(u) => Value::UInt(u),
        mysql_async::Value::Float(f) => Value::Float(f as f64),
        mysql_async::Value::Double(f) => Value::Float(f),
        other => Value::String(format!("{other:?}").into()),
    }
}
