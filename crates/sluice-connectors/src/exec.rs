//! The `exec` stage of a sink: a program the operator names reshapes the changes of chosen tables before the
//! sink writes them, for targets whose shape needs lookups the configuration cannot express.
//!
//! **Protocol.** For each batch, the program is started (no shell) with the batch's changes of the chosen
//! tables on standard input, one change envelope per line (docs/pipelines.md, "The change envelope"), and
//! must write **exactly one JSON line per input line, in order**, on standard output: the change as it
//! should be written (`op`, `database`, `table`, `before`, `after`; missing keys keep the input's), and exit
//! 0. One line per line keeps every record at its place in the stream, so exactly-once sinks keep their
//! cursors. Position, commit time and transaction id cannot be changed. Values come back as JSON types
//! (numbers, strings, booleans, objects).
//!
//! **Failure.** A run that exits non-zero, writes another number of lines or a line that is not a change, or
//! outlasts `timeout` is killed and tried again (`retries` times, 1 s apart, doubling); then the whole batch
//! goes to the dead-letter output with the reason (the exit status and the end of its standard error).
//!
//! Only pipeline files the operator runs (`sluice run`) may name a program: a pipeline sent through the API is
//! data and never runs one (ARCHITECTURE §6).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::change::{Column, JsonText, Row};
use sluice_core::component::Record;
use sluice_core::{ChangeEvent, Operation, Value};
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `[sinks.NAME.exec]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments, e.g. `["/opt/enrich/bin/enrich", "--region", "eu"]` (no shell).
    pub command: Vec<String>,
    /// The tables whose changes go through it (`db.table`, `*` globs); default all.
    pub tables: Option<Vec<String>>,
    /// Time limit of one run (default `30s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Runs tried again after a failure before the batch is dead-lettered (default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_retries() -> u32 {
    3
}

impl ExecConfig {
    pub fn validate(&self, at: &str, confined: bool, errors: &mut Vec<sluice_core::ConfigError>) {
        let key = |k| sluice_core::config::key_path(at, k);
        if confined {
            errors.push(sluice_core::ConfigError::new(
                at.to_string(),
                "a pipeline sent through the API never runs a program; `exec` is for pipeline files the operator runs with `sluice run`",
            ));
            return;
        }
        if self.command.first().is_none_or(|c| c.is_empty()) {
            errors.push(sluice_core::ConfigError::new(key("command"), "name the program: `command = [\"/path/to/program\", \"arg\"]`"));
        }
        for t in self.tables.iter().flatten() {
            if t.split_once('.').is_none_or(|(d, t)| d.is_empty() || t.is_empty()) {
                errors.push(sluice_core::ConfigError::new(key("tables"), format!("`{t}` is not `database.table` (globs allowed)")));
            }
        }
        if self.timeout.is_zero() {
            errors.push(sluice_core::ConfigError::new(key("timeout"), "must be more than 0"));
        }
    }
}

/// A sink behind an `exec` stage.
pub struct ExecSink {
    inner: Box<dyn Sink>,
    config: Arc<ExecConfig>,
    /// For errors and logs: `sinks.NAME.exec`.
    at: String,
}

impl ExecSink {
    pub fn new(inner: Box<dyn Sink>, config: ExecConfig, at: String) -> Self {
        Self { inner, config: Arc::new(config), at }
    }
}

fn chosen(config: &ExecConfig, ev: &ChangeEvent) -> bool {
    let name = format!("{}.{}", ev.database, ev.table);
    config.tables.as_ref().is_none_or(|ts| ts.iter().any(|p| sluice_core::glob::glob_match(p, &name)))
}

/// The batch with the chosen changes replaced by what the program made of them (`at` names the stage).
async fn transform(config: &ExecConfig, at: &str, batch: &Batch) -> Result<Option<Batch>, SinkError> {
    {
        let chosen: Vec<(usize, &Arc<ChangeEvent>)> = batch
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Record::Change(ev) if chosen(config, ev) => Some((i, ev)),
                _ => None,
            })
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let mut input = Vec::new();
        for (_, ev) in &chosen {
            serde_json::to_writer(&mut input, &***ev).map_err(|e| SinkError::permanent(format!("{}: cannot encode a change: {e}", at)))?;
            input.push(b'\n');
        }
        let mut pause = Duration::from_secs(1);
        let mut attempt = 0;
        let output = loop {
            match run(config, &input).await.and_then(|out| parse(&out, &chosen)) {
                Ok(changes) => break changes,
                Err(e) if attempt < config.retries => {
                    attempt += 1;
                    tracing::warn!(stage = %at, error = %e, attempt, retry_in = ?pause, "exec failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(SinkError::permanent(format!("{}: {e} (after {} runs)", at, attempt + 1))),
            }
        };
        let mut records = batch.records.clone();
        for ((i, _), ev) in chosen.iter().zip(output) {
            records[*i] = Record::Change(Arc::new(ev));
        }
        Ok(Some(Batch { records, start: batch.start.clone(), commits: batch.commits.clone() }))
    }
}

/// One run: the input on stdin, stdout back; the error names the exit status and the end of stderr.
async fn run(config: &ExecConfig, input: &[u8]) -> Result<Vec<u8>, String> {
    let (program, args) = config.command.split_first().ok_or("no program")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let work = async {
        // Write and read at once: a program that answers line by line would fill its pipe otherwise.
        let write = async {
            let r = stdin.write_all(input).await;
            drop(stdin);
            r
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (w, o, e) = tokio::join!(write, stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let status = child.wait().await;
        (w, o, e, status, out, err)
    };
    let (w, o, _, status, out, err) = tokio::time::timeout(config.timeout, work)
        .await
        .map_err(|_| format!("`{program}` did not finish within {}; killed", humantime::format_duration(config.timeout)))?;
    let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(500)..]).trim().to_string();
    let status = status.map_err(|e| format!("`{program}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{program}` exited with {status}{}", if tail.is_empty() { String::new() } else { format!(": {tail}") }));
    }
    o.map_err(|e| format!("cannot read `{program}`'s output: {e}"))?;
    // A program that exits 0 without reading all its input has still answered; its output is checked below.
    if let Err(e) = w
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(format!("cannot write to `{program}`: {e}"));
    }
    Ok(out)
}

/// The program's lines back into changes, one per input change.
fn parse(out: &[u8], inputs: &[(usize, &Arc<ChangeEvent>)]) -> Result<Vec<ChangeEvent>, String> {
    let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
    if lines.len() != inputs.len() {
        return Err(format!("wrote {} lines for {} changes (exactly one line per input line)", lines.len(), inputs.len()));
    }
    lines
        .iter()
        .zip(inputs)
        .enumerate()
        .map(|(n, (line, (_, orig)))| {
            let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("output line {}: not JSON: {e}", n + 1))?;
            change_from(&v, orig).map_err(|e| format!("output line {}: {e}", n + 1))
        })
        .collect()
}

fn change_from(v: &serde_json::Value, orig: &ChangeEvent) -> Result<ChangeEvent, String> {
    let obj = v.as_object().ok_or("not a JSON object")?;
    let text = |k: &str, default: &Arc<str>| -> Result<Arc<str>, String> {
        match obj.get(k) {
            None => Ok(default.clone()),
            Some(serde_json::Value::String(s)) => Ok(s.as_str().into()),
            Some(_) => Err(format!("`{k}` is not a string")),
        }
    };
    let op = match obj.get("op").and_then(|o| o.as_str()) {
        None => orig.op,
        Some("insert") => Operation::Insert,
        Some("update") => Operation::Update,
        Some("delete") => Operation::Delete,
        Some("snapshot") => Operation::Snapshot,
        Some(other) => return Err(format!("`op` is `{other}`, not insert, update, delete or snapshot")),
    };
    let image = |k: &str, orig_row: &Option<Row>| -> Result<Option<Row>, String> {
        match obj.get(k) {
            None => Ok(orig_row.clone()),
            Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Object(m)) => {
                let keys: Vec<&str> = orig_row.iter().flat_map(|r| r.columns.iter().filter(|c| c.primary_key).map(|c| &*c.name)).collect();
                let columns: Arc<[Column]> =
                    m.keys().map(|name| Column { name: name.as_str().into(), primary_key: keys.contains(&name.as_str()) }).collect::<Vec<_>>().into();
                Ok(Some(Row { columns, values: m.values().map(value).collect() }))
            }
            Some(_) => Err(format!("`{k}` is not an object or null")),
        }
    };
    let origin = sluice_core::Origin { commit_ts_ms: orig.commit_ts_ms, txn: orig.txn.clone(), position: orig.position.clone() };
    let (before, after) = (image("before", &orig.before)?, image("after", &orig.after)?);
    if before.is_none() && after.is_none() {
        return Err("has neither `before` nor `after`".into());
    }
    Ok(ChangeEvent::row(orig.source.clone(), text("database", &orig.database)?, text("table", &orig.table)?, op, before, after, origin))
}

fn value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (_, Some(u), _) => Value::UInt(u),
            (_, _, Some(f)) => Value::Float(f),
            _ => Value::Decimal(n.to_string().into()),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        other => Value::Json(JsonText::from_value(other)),
    }
}

impl Sink for ExecSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        self.inner.open()
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let (config, at) = (self.config.clone(), self.at.clone());
            match transform(&config, &at, batch).await? {
                Some(b) => self.inner.deliver(&b).await,
                None => self.inner.deliver(batch).await,
            }
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        self.inner.flush()
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Origin, Position};

    use super::*;

    fn change(id: i64) -> Arc<ChangeEvent> {
        let columns: Arc<[Column]> = vec![Column { name: "id".into(), primary_key: true }, Column { name: "v".into(), primary_key: false }].into();
        let row = Row { columns, values: vec![Value::Int(id), Value::String("x".into())] };
        let origin = Origin { commit_ts_ms: 5, txn: None, position: Position::Lsn { lsn: id as u64 } };
        Arc::new(ChangeEvent::row("p".into(), "shop".into(), "orders".into(), Operation::Insert, None, Some(row), origin))
    }

    fn config(script: &str, timeout: u64) -> ExecConfig {
        ExecConfig { command: vec!["sh".into(), "-c".into(), script.into()], tables: None, timeout: Duration::from_secs(timeout), retries: 0 }
    }

    #[tokio::test]
    async fn a_program_reshapes_changes_one_line_per_line_and_keys_stay_keys() {
        let (a, b) = (change(1), change(2));
        let inputs = vec![(0, &a), (1, &b)];
        let out = run(
            &config(r#"sed 's/"after":{"id":\([0-9]*\),/"after":{"id":\1,"extra":true,/'"#, 10),
            b"{\"after\":{\"id\":1,\"v\":\"x\"}}\n{\"after\":{\"id\":2,\"v\":\"x\"}}\n",
        )
        .await
        .unwrap();
        let got = parse(&out, &inputs).unwrap();
        let row = got[0].after.as_ref().unwrap();
        assert_eq!(row.get("extra"), Some(&Value::Bool(true)));
        assert!(row.columns.iter().find(|c| &*c.name == "id").unwrap().primary_key);
        assert_eq!((got[1].position.clone(), got[1].commit_ts_ms), (b.position.clone(), 5));
    }

    #[tokio::test]
    async fn failures_name_the_exit_status_stderr_line_counts_and_timeouts() {
        let a = change(1);
        let e = run(&config("echo 'lookup table missing' >&2; exit 3", 10), b"{}\n").await.unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("lookup table missing"), "{e}");
        let e = run(&config("sleep 5", 1), b"{}\n").await.unwrap_err();
        assert!(e.contains("did not finish within 1s"), "{e}");
        let out = run(&config("cat; echo '{}'", 10), b"{\"after\":{\"id\":1}}\n").await.unwrap();
        assert!(parse(&out, &[(0, &a)]).unwrap_err().contains("2 lines for 1 changes"));
        let e = run(&ExecConfig { command: vec!["/nonexistent/prog".into()], ..config("", 1) }, b"").await.unwrap_err();
        assert!(e.contains("cannot start `/nonexistent/prog`"), "{e}");
    }
}
