//! What the message sinks (NATS, RabbitMQ, MQTT, Redis Streams) share: the payload of a record (the JSON
//! envelope or the row alone), the subject/topic/key rendered from the event, and a message id that is the
//! same every time the same change is delivered, for the brokers' deduplication.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sluice_core::component::Record;
use sluice_core::{ChangeEvent, Position};
use sluice_pipeline::shape::template::{Scope, Template};

/// Repeats a broker (or the sink's own dedup window) dropped after a restart sent them again.
pub const SINK_DUPLICATES_TOTAL: &str = "sluice_sink_duplicates_total";

/// A broker URL's problems under `at` (`scheme://host[:port]…`).
pub(crate) fn validate_broker_url(at: &str, url: &str, scheme: &str, errors: &mut Vec<sluice_core::ConfigError>) {
    let path = sluice_core::config::key_path(at, "url");
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == scheme && u.host_str().is_some() => {}
        Ok(u) => errors.push(sluice_core::ConfigError::new(path, format!("`{}://…` is not a {scheme}://host:port URL", u.scheme()))),
        Err(e) => errors.push(sluice_core::ConfigError::new(path, format!("not a URL: {e}"))),
    }
}

/// A broker's URL, and the address to connect to (the egress policy applied, see
/// [`Scope::allowed_address`](crate::scope::Scope::allowed_address)); `what` names the broker in errors.
pub(crate) async fn broker_address(
    url: &str,
    default_port: u16,
    scope: &crate::scope::Scope,
    what: &str,
) -> Result<(url::Url, std::net::SocketAddr), sluice_pipeline::SinkError> {
    let parsed = url::Url::parse(url).map_err(|e| sluice_pipeline::SinkError::permanent(format!("`url`: {e}")))?;
    let host = parsed.host_str().ok_or_else(|| sluice_pipeline::SinkError::permanent("`url` names no host"))?.to_string();
    let port = parsed.port().unwrap_or(default_port);
    let ip = scope.allowed_address(&host, port).await.map_err(|e| sluice_pipeline::SinkError::retryable(format!("cannot reach {what}: {e}")))?;
    Ok((parsed, std::net::SocketAddr::new(ip, port)))
}

/// What a message carries.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// The change envelope (docs/pipelines.md, "The change envelope"): `op`, `before`, `after`, `position`,
    /// `commit_ts_ms` and the rest. Metrics as their JSON object.
    #[default]
    Envelope,
    /// The row alone as a JSON object: the after image, or the before image of a delete.
    Row,
}

/// The message body of a record.
pub(crate) fn body(record: &Record, payload: Payload, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    let r = match (payload, record) {
        (Payload::Row, Record::Change(ev)) => match ev.image() {
            Some(row) => serde_json::to_writer(&mut *buf, row),
            None => serde_json::to_writer(&mut *buf, &**ev),
        },
        _ => serde_json::to_writer(&mut *buf, record),
    };
    r.map_err(|e| format!("cannot encode the record: {e}"))
}

/// A subject, topic or key rendered from a change: `{$db}`, `{$table}`, `{$op}` and `{column}` of its row.
pub(crate) fn render(template: &Template, record: &Record) -> Result<String, String> {
    let Record::Change(ev) = record else {
        let empty = sluice_core::Row { columns: Vec::new().into(), values: Vec::new() };
        return template.render(&Scope { db: "", table: "", field: "", op: "metric", row: &empty }, false).map_err(|e| e.to_string());
    };
    let empty;
    let row = match ev.image() {
        Some(r) => r,
        None => {
            empty = sluice_core::Row { columns: Vec::new().into(), values: Vec::new() };
            &empty
        }
    };
    template.render(&Scope { db: &ev.database, table: &ev.table, field: "", op: ev.op.name(), row }, true).map_err(|e| e.to_string())
}

/// A message id the same for every delivery of one change: its table, operation, position in the stream and
/// key (snapshot rows share a position, their keys tell them apart). Metrics: their series and timestamp.
pub(crate) fn message_id(record: &Record) -> String {
    let mut h = Sha256::new();
    match record {
        Record::Change(ev) => change_identity(ev, &mut h),
        Record::Metric(m) => {
            h.update(m.endpoint.as_bytes());
            h.update([0]);
            h.update(m.metric.as_bytes());
            for (k, v) in &m.tags {
                h.update([0]);
                h.update(k.as_bytes());
                h.update([1]);
                h.update(v.as_bytes());
            }
            h.update(m.timestamp.to_le_bytes());
        }
    }
    hex::encode(&h.finalize()[..16])
}

fn change_identity(ev: &ChangeEvent, h: &mut Sha256) {
    h.update(ev.source.as_bytes());
    h.update([0]);
    h.update(ev.database.as_bytes());
    h.update([0]);
    h.update(ev.table.as_bytes());
    h.update([0]);
    h.update(ev.op.name().as_bytes());
    match &ev.position {
        Position::Binlog { file, pos, gtid, row } => {
            h.update(file.as_bytes());
            h.update(pos.to_le_bytes());
            h.update(gtid.as_deref().unwrap_or("").as_bytes());
            h.update(row.to_le_bytes());
        }
        Position::Lsn { lsn } => h.update(lsn.to_le_bytes()),
    }
    if let Some(row) = ev.image() {
        for (c, v) in row.columns.iter().zip(&row.values) {
            if c.primary_key {
                h.update([0]);
                h.update(v.to_string().as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::change::{Column, Row};
    use sluice_core::{Operation, Origin, Value};

    use super::*;

    fn change(id: i64, lsn: u64) -> Record {
        let columns: Arc<[Column]> = vec![Column { name: "id".into(), primary_key: true }, Column { name: "v".into(), primary_key: false }].into();
        let row = Row { columns, values: vec![Value::Int(id), Value::String("x".into())] };
        let origin = Origin { commit_ts_ms: 1, txn: None, position: Position::Lsn { lsn } };
        Record::Change(Arc::new(ChangeEvent::row("p".into(), "shop".into(), "orders".into(), Operation::Snapshot, None, Some(row), origin)))
    }

    #[test]
    fn ids_are_stable_and_tell_snapshot_rows_apart() {
        assert_eq!(message_id(&change(1, 7)), message_id(&change(1, 7)));
        assert_ne!(message_id(&change(1, 7)), message_id(&change(2, 7)));
        assert_ne!(message_id(&change(1, 7)), message_id(&change(1, 8)));
        assert_eq!(message_id(&change(1, 7)).len(), 32);
    }

    #[test]
    fn subjects_and_bodies() {
        let t = Template::parse("cdc.{$db}.{$table}.{$op}.{id}").unwrap();
        assert_eq!(render(&t, &change(5, 1)).unwrap(), "cdc.shop.orders.snapshot.5");
        let mut buf = Vec::new();
        body(&change(5, 1), Payload::Row, &mut buf).unwrap();
        assert_eq!(String::from_utf8(buf.clone()).unwrap(), r#"{"id":5,"v":"x"}"#);
        body(&change(5, 1), Payload::Envelope, &mut buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!((v["op"].as_str(), v["after"]["id"].as_i64()), (Some("snapshot"), Some(5)));
    }
}
