//! Streaming pgoutput with `pgwire-replication`; creating or reusing the publication and the slot.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use pgwire_replication::{Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent};
use sluice_core::change::{Column, Row};
use sluice_core::resume::LsnPosition;
use sluice_core::{ChangeEvent, Engine, Operation, Origin, Position, ResumePosition, TlsMode, Value};
use sluice_engines::ConnectSpec;
use sluice_pipeline::{Source, SourceError, SourceItem};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::{PgLogicalConfig, quote_ident};
use super::decode::{self, Message, Relations};
use super::toast::ToastCache;

/// Seconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

pub struct PgLogicalSource {
    name: Arc<str>,
    config: PgLogicalConfig,
    connection: ConnectSpec,
    /// The database streamed (the connection's, else libpq's default: the user name).
    database: String,
    slot: String,
    publication: String,
    reconnect_max: Duration,
}

use crate::sources::reconnect::{Backoff, Next, Stop};

fn pg_time_ms(micros: i64) -> i64 {
    PG_EPOCH_UNIX_SECS * 1000 + micros / 1000
}

impl PgLogicalSource {
    pub fn new(pipeline: &str, config: PgLogicalConfig) -> Result<Self, String> {
        let connection = crate::sources::connection(&config.url, config.connection.as_ref(), &[Engine::Postgres])?;
        let user = connection.username.clone().unwrap_or_else(|| "postgres".into());
        let database = connection.database.clone().unwrap_or_else(|| user.clone());
        let connection = ConnectSpec { username: Some(user), ..connection }.with_database(Some(&database));
        let (slot, publication) = config.names(pipeline, &database);
        let reconnect_max = config.reconnect_max;
        Ok(Self { name: pipeline.into(), config, connection, database, slot, publication, reconnect_max })
    }

    async fn admin(&self) -> Result<tokio_postgres::Client, Stop> {
        sluice_engines::connect::postgres_client(&self.connection).await.map_err(|f| Stop::from_connect(f, "connect"))
    }

    /// The replication connection's settings and, for a TLS instance, the relay it goes through (see
    /// `tls_relay.rs`); the relay must live as long as the client.
    async fn replication_config(&self, start: Lsn) -> Result<(ReplicationConfig, Option<super::tls_relay::Relay>), Stop> {
        let spec = &self.connection;
        let user = spec.username.as_deref().unwrap_or("postgres");
        // The driver takes the password as a plain String; this is the one place it is exposed.
        let password = spec.password.as_ref().map(|p| p.expose().as_str()).unwrap_or("");
        let (cfg, relay) = if spec.tls_mode == TlsMode::Disable {
            // The address the egress policy allowed, not the name resolved again by the driver.
            let addr = sluice_engines::connect::resolve(spec).await.map_err(|f| Stop::from_connect(f, "connect for replication"))?;
            let cfg =
                ReplicationConfig::new(addr.ip().to_string(), user, password, &self.database, &self.slot, self.publication.as_str()).with_port(addr.port());
            (cfg, None)
        } else {
            let tls = sluice_engines::connect::postgres_tls(spec).await.map_err(|f| Stop::from_connect(f, "connect for replication"))?;
            let relay = super::tls_relay::Relay::start(tls, spec.port).map_err(|e| Stop::Retry(format!("cannot open the replication relay socket: {e}")))?;
            let dir = relay.socket_dir().to_string_lossy().into_owned();
            let cfg = ReplicationConfig::unix(dir, relay.port(), user, password, &self.database, &self.slot, self.publication.as_str());
            (cfg, Some(relay))
        };
        let cfg = cfg
            .with_start_lsn(start)
            .with_status_interval(Duration::from_secs(1))
            .with_options("-c datestyle=ISO -c TimeZone=UTC -c extra_float_digits=3")
            .with_application_name(format!("sluice-{}", self.name));
        Ok((cfg, relay))
    }

    /// Creates the publication and the slot when missing; refuses a lost slot or a wrong plugin. A missing
    /// slot is created only on a first start: once a checkpoint exists, its absence means changes were lost.
    async fn ensure_setup(&self, resuming: bool, create_slot: bool) -> Result<bool, Stop> {
        let c = self.admin().await?;
        let q = |e: tokio_postgres::Error| classify_pg(&e, "prepare replication");
        let wal_level: String = c.query_one("SHOW wal_level", &[]).await.map_err(q)?.get(0);
        if wal_level != "logical" {
            return Err(Stop::Fatal(SourceError::new(format!("wal_level is `{wal_level}`: logical replication needs wal_level=logical (a server restart)"))));
        }
        let exists = c.query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&self.publication]).await.map_err(q)?.is_some();
        if !exists {
            let target = if self.config.tables.is_empty() {
                "ALL TABLES".to_string()
            } else {
                let list: Vec<String> = self
                    .config
                    .tables
                    .iter()
                    .map(|t| {
                        let (s, n) = t.split_once('.').expect("validated");
                        format!("{}.{}", quote_ident(s), quote_ident(n))
                    })
                    .collect();
                format!("TABLE {}", list.join(", "))
            };
            c.batch_execute(&format!("CREATE PUBLICATION {} FOR {target}", quote_ident(&self.publication))).await.map_err(q)?;
            tracing::info!(source = %self.name, publication = %self.publication, "publication created");
        }
        let slot = c
            .query_opt("SELECT plugin, wal_status, database::text, current_database()::text FROM pg_replication_slots WHERE slot_name = $1", &[&self.slot])
            .await
            .map_err(q)?;
        match slot {
            None if resuming => {
                return Err(Stop::Fatal(SourceError::new(format!(
                    "replication slot `{}` does not exist although this pipeline has a checkpoint: it was dropped, and the changes since are gone. Remove the checkpoint file to start over (with a snapshot)",
                    self.slot
                ))));
            }
            None if create_slot => {
                c.query_one("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&self.slot]).await.map_err(q)?;
                tracing::info!(source = %self.name, slot = %self.slot, "replication slot created");
                return Ok(false);
            }
            None => return Ok(false),
            Some(row) => {
                let plugin: Option<String> = row.get(0);
                let status: Option<String> = row.get(1);
                let (slot_db, this_db): (Option<String>, String) = (row.get(2), row.get(3));
                if slot_db.as_deref() != Some(this_db.as_str()) {
                    return Err(Stop::Fatal(SourceError::new(format!(
                        "replication slot `{}` belongs to database {:?}, not {this_db:?}: slots are per server, so choose another `slot`",
                        self.slot, slot_db
                    ))));
                }
                if plugin.as_deref() != Some("pgoutput") {
                    return Err(Stop::Fatal(SourceError::new(format!("replication slot `{}` uses plugin {:?}, not pgoutput", self.slot, plugin))));
                }
                if status.as_deref() == Some("lost") {
                    return Err(Stop::Fatal(SourceError::new(format!(
                        "replication slot `{}` is invalidated (the server removed WAL it still needed); changes since its last confirmed position are gone. Drop it, then start again (with a snapshot)",
                        self.slot
                    ))));
                }
            }
        }
        Ok(true)
    }

    /// Reads the snapshot tables inside the snapshot the slot exported, in pages of 1,000 rows (memory stays
    /// bounded), and sends them as `snapshot` changes followed by one commit at the slot's consistent point.
    async fn read_snapshot(&self, snapshot_name: &str, consistent_point: Lsn, out: &mpsc::Sender<SourceItem>) -> Result<(), Stop> {
        let c = self.admin().await?;
        let q = |e: tokio_postgres::Error| classify_pg(&e, "read the initial snapshot");
        c.batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'", snapshot_name.replace('\'', "")))
            .await
            .map_err(q)?;
        c.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3").await.map_err(q)?;
        let tables: Vec<(String, String)> = c
            .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2", &[&self.publication])
            .await
            .map_err(q)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .filter(|(s, t): &(String, String)| {
                let full = format!("{s}.{t}");
                self.config.snapshot.iter().any(|p| crate::sources::glob_match(p, &full))
            })
            .collect();
        tracing::info!(source = %self.name, tables = tables.len(), snapshot = %snapshot_name, "initial snapshot started");
        let commit_ts_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let mut total = 0u64;
        for (schema, table) in &tables {
            let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
            let stmt = c.prepare(&format!("SELECT * FROM {qualified}")).await.map_err(q)?;
            let pk: Vec<String> = c
                .query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                    &[&qualified],
                )
                .await
                .map_err(q)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let columns: Arc<[Column]> =
                stmt.columns().iter().map(|col| Column { name: col.name().into(), primary_key: pk.iter().any(|p| p == col.name()) }).collect::<Vec<_>>().into();
            let oids: Vec<u32> = stmt.columns().iter().map(|col| col.type_().oid()).collect();
            let rel = decode::Relation { schema: schema.as_str().into(), name: table.as_str().into(), columns: columns.clone(), type_oids: oids };
            c.batch_execute(&format!("DECLARE sluice_snapshot NO SCROLL CURSOR FOR SELECT * FROM {qualified}")).await.map_err(q)?;
            loop {
                let page = c.simple_query("FETCH 1000 FROM sluice_snapshot").await.map_err(q)?;
                let mut got = 0;
                for msg in page {
                    if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
                        got += 1;
                        let cells = (0..r.len())
                            .map(|i| match r.get(i) {
                                Some(v) => decode::Cell::Text(v.as_bytes().to_vec()),
                                None => decode::Cell::Null,
                            })
                            .collect();
                        let origin = Origin { commit_ts_ms, txn: None, position: Position::Lsn { lsn: consistent_point.0 } };
                        let row = decode::row(&rel, cells, None);
                        let ev = ChangeEvent::row(self.name.clone(), rel.schema.clone(), rel.name.clone(), Operation::Snapshot, None, Some(row), origin);
                        out.send(SourceItem::Change(ev)).await.map_err(|_| Stop::Shutdown)?;
                    }
                }
                total += got;
                if got == 0 {
                    break;
                }
            }
            c.batch_execute("CLOSE sluice_snapshot").await.map_err(q)?;
        }
        c.batch_execute("COMMIT").await.map_err(q)?;
        let resume = ResumePosition::Lsn(LsnPosition { lsn: consistent_point.0 });
        out.send(SourceItem::Commit { resume, commit_ts_ms }).await.map_err(|_| Stop::Shutdown)?;
        tracing::info!(source = %self.name, rows = total, "initial snapshot done; streaming from the slot's consistent point");
        Ok(())
    }

    async fn stream_once(
        &self,
        pos: &mut Option<u64>,
        committed: &mut watch::Receiver<Option<ResumePosition>>,
        out: &mpsc::Sender<SourceItem>,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        let want_snapshot = pos.is_none() && !self.config.snapshot.is_empty();
        let slot_exists = self.ensure_setup(pos.is_some(), !want_snapshot).await?;
        if want_snapshot && slot_exists {
            // A slot without a checkpoint is left from a snapshot cut short: nothing was confirmed through it,
            // so it is dropped and the snapshot starts over with a fresh one.
            let c = self.admin().await?;
            c.query_one("SELECT pg_drop_replication_slot($1)", &[&self.slot]).await.map_err(|e| classify_pg(&e, "drop the unfinished snapshot's slot"))?;
        }
        let start = Lsn(pos.unwrap_or(0));
        let (cfg, _relay) = self.replication_config(start).await?;
        let mut client = if want_snapshot {
            // The slot is created on the replication connection itself, which exports a snapshot that stays
            // valid until this connection runs its next command (START_REPLICATION).
            let mut gated = ReplicationClient::connect_gated(cfg).await.map_err(|e| classify_wire(e, &self.slot))?;
            let rows = gated
                .simple_query(&format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT", quote_ident(&self.slot)))
                .await
                .map_err(|e| classify_wire(e, &self.slot))?;
            let cell = |i: usize| rows.first().and_then(|r| r.get(i)).and_then(|c| c.as_ref()).map(|b| String::from_utf8_lossy(b).into_owned());
            let (Some(point), Some(snapshot)) = (cell(1), cell(2)) else {
                return Err(Stop::Retry("CREATE_REPLICATION_SLOT answered without a consistent point and snapshot".into()));
            };
            let point = Lsn::parse(&point).map_err(|e| Stop::Retry(format!("bad consistent point `{point}`: {e}")))?;
            tracing::info!(source = %self.name, slot = %self.slot, "replication slot created with an exported snapshot");
            self.read_snapshot(&snapshot, point, out).await?;
            gated.start().await.map_err(|e| classify_wire(e, &self.slot))?;
            gated.wait_started().await.map_err(|e| classify_wire(e, &self.slot))?;
            *pos = Some(point.0);
            gated
        } else {
            ReplicationClient::connect(cfg).await.map_err(|e| classify_wire(e, &self.slot))?
        };
        if let Some(lsn) = confirmed_lsn(committed) {
            client.update_applied_lsn(Lsn(lsn));
        }
        tracing::info!(source = %self.name, slot = %self.slot, start_lsn = %start, "logical replication started");
        let mut relations = Relations::default();
        // Per session on purpose: see toast.rs for why a reconnect starts it empty.
        let mut toast = ToastCache::default();
        let mut xid: Option<Arc<str>> = None;
        let mut commit_ts_ms = 0i64;
        let mut last_sent = pos.unwrap_or(0);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = client.shutdown().await;
                    return Err(Stop::Shutdown);
                }
                changed = committed.changed() => {
                    if changed.is_ok()
                        && let Some(lsn) = confirmed_lsn(committed) {
                            // Confirm to the server only what every sink has and the checkpoint saved.
                            client.update_applied_lsn(Lsn(lsn));
                        }
                    continue;
                }
                e = client.recv() => e,
            };
            let event = match event {
                Ok(Some(e)) => e,
                Ok(None) => return Err(Stop::Retry("the server ended the replication stream".into())),
                Err(e) => return Err(classify_wire(e, &self.slot)),
            };
            match event {
                ReplicationEvent::Begin { xid: x, commit_time_micros, .. } => {
                    xid = Some(x.to_string().into());
                    commit_ts_ms = pg_time_ms(commit_time_micros);
                }
                ReplicationEvent::XLogData { data, wal_start, .. } => {
                    let msg = decode::decode(&data).map_err(|e| Stop::Retry(format!("{e} at {wal_start}")))?;
                    match msg {
                        Message::Relation(oid, r) => {
                            toast.forget_relation(oid);
                            relations.insert(oid, r)
                        }
                        Message::Change { relation, op, old, new } => {
                            let Some(rel) = relations.get(relation) else {
                                return Err(Stop::Retry(format!("change for unknown relation {relation} at {wal_start}")));
                            };
                            let before = old.map(|cells| decode::row(&rel, cells, None));
                            let mut after = new.map(|cells| decode::row(&rel, cells, before.as_ref()));
                            toast.apply(relation, op, before.as_ref(), after.as_mut());
                            let origin = Origin { commit_ts_ms, txn: xid.clone(), position: Position::Lsn { lsn: wal_start.0 } };
                            let ev = ChangeEvent::row(self.name.clone(), rel.schema.clone(), rel.name.clone(), op, before, after, origin);
                            out.send(SourceItem::Change(ev)).await.map_err(|_| Stop::Shutdown)?;
                        }
                        Message::Truncate(oids) => {
                            for oid in oids {
                                toast.forget_relation(oid);
                                if let Some(rel) = relations.get(oid) {
                                    let origin = Origin { commit_ts_ms, txn: xid.clone(), position: Position::Lsn { lsn: wal_start.0 } };
                                    let statement = format!("TRUNCATE {}.{}", rel.schema, rel.name).into();
                                    let ev = ChangeEvent::ddl(self.name.clone(), rel.schema.clone(), rel.name.clone(), statement, origin);
                                    out.send(SourceItem::Change(ev)).await.map_err(|_| Stop::Shutdown)?;
                                }
                            }
                        }
                        Message::Other => {}
                    }
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    // Idle and fully confirmed: nothing between the last commit and the server's WAL end concerns
                    // this slot, so confirm up to it and let the server recycle WAL.
                    let confirmed = confirmed_lsn(committed).unwrap_or(0);
                    if xid.is_none() && confirmed >= last_sent && wal_end.0 > confirmed {
                        client.update_applied_lsn(wal_end);
                    }
                }
                ReplicationEvent::Commit { end_lsn, commit_time_micros, .. } => {
                    last_sent = end_lsn.0;
                    let resume = ResumePosition::Lsn(LsnPosition { lsn: end_lsn.0 });
                    out.send(SourceItem::Commit { resume, commit_ts_ms: pg_time_ms(commit_time_micros) }).await.map_err(|_| Stop::Shutdown)?;
                    *pos = Some(end_lsn.0);
                    xid = None;
                }
                _ => {}
            }
        }
    }
}

/// The LSN every sink has and the checkpoint saved: what the slot may be confirmed up to.
fn confirmed_lsn(committed: &watch::Receiver<Option<ResumePosition>>) -> Option<u64> {
    match &*committed.borrow() {
        Some(ResumePosition::Lsn(l)) => Some(l.lsn),
        _ => None,
    }
}

fn classify_pg(e: &tokio_postgres::Error, doing: &str) -> Stop {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION || *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            Stop::Fatal(SourceError::new(format!("cannot {doing}: {e}")))
        }
        Some(_) => {
            Stop::Fatal(SourceError::new(format!("cannot {doing}: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))))
        }
        None => Stop::Retry(format!("cannot {doing}: {e}")),
    }
}

/// The SQLSTATE of a replication-protocol server error. pgwire-replication 0.5 hands an ErrorResponse over
/// as text only, formatted `"{message} (SQLSTATE {code})"` (`ErrorFields::to_error_string` in its
/// `src/protocol/messages.rs`), so the code is read back here, in one place, and nowhere else looks at the
/// text. `None` when the server sent no code.
pub(crate) fn wire_sqlstate(message: &str) -> Option<&str> {
    let (_, code) = message.strip_suffix(')')?.rsplit_once("(SQLSTATE ")?;
    (code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())).then_some(code)
}

fn classify_wire(e: PgWireError, slot: &str) -> Stop {
    let code = match &e {
        PgWireError::Auth(_) => return Stop::Fatal(SourceError::with_source("the server refused the replication login", e)),
        PgWireError::Server(m) => wire_sqlstate(m),
        _ => None,
    };
    match code {
        // undefined_object: the slot was dropped under us.
        Some("42704") => Stop::Fatal(SourceError::with_source(
            format!("replication slot `{slot}` does not exist (dropped?); start again to recreate it (with a snapshot)"),
            e,
        )),
        // object_not_in_prerequisite_state: an invalidated slot ("can no longer get changes"), or a server
        // no longer set up for logical decoding. Neither passes by itself.
        Some("55000") => Stop::Fatal(SourceError::with_source(
            format!(
                "replication slot `{slot}` cannot be used (invalidated: changes since its last confirmed position are gone; or the server is not set up for logical decoding)"
            ),
            e,
        )),
        // object_in_use: another connection streams from the slot; it may let go.
        Some("55006") => Stop::Retry(format!("replication slot `{slot}` is in use by another connection: {e}")),
        // Class 28, invalid authorization; 42501, insufficient privilege: retrying does not fix them.
        Some(c) if c.starts_with("28") || c == "42501" => Stop::Fatal(SourceError::with_source("the server refused the replication connection", e)),
        _ => Stop::Retry(e.to_string()),
    }
}

impl Source for PgLogicalSource {
    fn run<'a>(
        &'a mut self,
        resume: Option<ResumePosition>,
        mut committed: watch::Receiver<Option<ResumePosition>>,
        out: mpsc::Sender<SourceItem>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let mut pos = match resume {
                None => None,
                Some(ResumePosition::Lsn(l)) => Some(l.lsn),
                Some(other) => return Err(SourceError::new(format!("the saved checkpoint ({other}) is not a PostgreSQL LSN"))),
            };
            let mut backoff = Backoff::new(self.reconnect_max);
            loop {
                let attempt = self.stream_once(&mut pos, &mut committed, &out, &shutdown).await;
                if let Next::Done(()) | Next::Stop = backoff.settle(&self.name, "", attempt, &shutdown).await? {
                    return Ok(());
                }
            }
        })
    }

    fn read_table<'a>(&'a self, database: &'a str, table: &'a str) -> BoxFuture<'a, Result<Vec<Row>, SourceError>> {
        Box::pin(async move {
            let c = match self.admin().await {
                Ok(c) => c,
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Retry(m)) => return Err(SourceError::new(format!("cannot read {database}.{table}: {m}"))),
                Err(Stop::Shutdown) => return Err(SourceError::new("stopped")),
            };
            // Exact values: the server's text output of each column (DateStyle ISO, UTC, as the stream
            // reads it) decoded by type, the same decoding as replicated rows, in the table's column order,
            // with the primary key from the catalog.
            let read = |e: tokio_postgres::Error| SourceError::with_source(format!("cannot read {database}.{table}"), e);
            c.batch_execute("SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3").await.map_err(read)?;
            let qualified = format!("{}.{}", quote_ident(database), quote_ident(table));
            let sql = format!("SELECT * FROM {qualified}");
            let stmt = c.prepare(&sql).await.map_err(read)?;
            let keys: Vec<String> = c
                .query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                    &[&qualified],
                )
                .await
                .map_err(read)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let columns: Arc<[Column]> =
                stmt.columns().iter().map(|c| Column { name: c.name().into(), primary_key: keys.iter().any(|k| k == c.name()) }).collect::<Vec<_>>().into();
            let oids: Vec<u32> = stmt.columns().iter().map(|c| c.type_().oid()).collect();
            let mut out = Vec::new();
            for m in c.simple_query(&sql).await.map_err(read)? {
                let tokio_postgres::SimpleQueryMessage::Row(r) = m else { continue };
                let values = (0..oids.len()).map(|i| r.get(i).map(|t| super::decode::typed(oids[i], t.as_bytes().to_vec())).unwrap_or(Value::Null)).collect();
                out.push(Row { columns: columns.clone(), values });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod sqlstate_tests {
    use super::wire_sqlstate;

    #[test]
    fn reads_the_code_pgwire_replication_appends() {
        assert_eq!(wire_sqlstate("replication slot \"s\" does not exist (SQLSTATE 42704)"), Some("42704"));
        assert_eq!(wire_sqlstate("error (SQLSTATE 55006)"), Some("55006"));
        assert_eq!(wire_sqlstate("x (SQLSTATE 0A000)"), Some("0A000"));
        // A message that only mentions a code, or none: no code.
        assert_eq!(wire_sqlstate("slot (SQLSTATE 42704) was dropped"), None);
        assert_eq!(wire_sqlstate("unknown server error"), None);
        assert_eq!(wire_sqlstate("bad (SQLSTATE 4270)"), None);
        assert_eq!(wire_sqlstate("bad (SQLSTATE 42704x)"), None);
    }
}
