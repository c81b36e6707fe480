//! Reading one transaction's row events back from the binlog: backup-then-execute tickets find the rows
//! their transaction changed here, through the same reader as change capture (same decoding of every
//! column type, same TLS and egress rules).

use std::time::Duration;

use sluice_core::ChangeEvent;
use sluice_engines::ConnectSpec;
use sluice_pipeline::{Source, SourceItem};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{MysqlBinlogConfig, MysqlBinlogSource, StartFrom};

/// Streams the binlog from `file:pos` and hands every row event of the transaction `gtid` to `on_row`,
/// returning once that transaction's commit is read. Fails when no event arrives for `idle` (the
/// transaction is not in this server's binlog) or the stream fails for good.
///
/// The reader registers as replica `server_id`: it must differ from every real replica and running
/// pipeline of the server, which would otherwise be disconnected.
pub async fn read_transaction(
    spec: &ConnectSpec,
    server_id: u32,
    file: &str,
    pos: u64,
    gtid: &str,
    idle: Duration,
    mut on_row: impl FnMut(&ChangeEvent) -> Result<(), String>,
) -> Result<usize, String> {
    let config = MysqlBinlogConfig {
        url: String::new(),
        connection: Some(spec.clone()),
        server_id,
        start: StartFrom::Position { file: file.to_string(), pos },
        include: Vec::new(),
        exclude: Vec::new(),
        snapshot: Vec::new(),
        reconnect_max: Duration::from_secs(5),
    };
    let mut source = MysqlBinlogSource::new("ticket-backup", config)?;
    let (tx, mut rx) = mpsc::channel(4096);
    let stop = CancellationToken::new();
    let (_keep, committed) = watch::channel(None);
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move { source.run(None, committed, tx, stop).await })
    };
    let mut rows = 0usize;
    let mut seen = false;
    let result = loop {
        let item = match tokio::time::timeout(idle, rx.recv()).await {
            Err(_) => break Err(format!("transaction {gtid} did not appear in the binlog from {file}:{pos} within {idle:?}")),
            Ok(None) => break Err("the binlog stream stopped before the transaction was read".to_string()),
            Ok(Some(i)) => i,
        };
        match item {
            SourceItem::Change(ev) if ev.txn.as_deref() == Some(gtid) => {
                seen = true;
                rows += 1;
                if let Err(e) = on_row(&ev) {
                    break Err(e);
                }
            }
            SourceItem::Change(_) => {}
            SourceItem::Commit { .. } if seen => break Ok(rows),
            SourceItem::Commit { .. } => {}
        }
    };
    stop.cancel();
    drop(rx);
    match task.await {
        Ok(Err(e)) if result.is_err() => Err(format!("{}: {e}", result.unwrap_err())),
        _ => result,
    }
}
