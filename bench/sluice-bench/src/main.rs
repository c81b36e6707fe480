//! `sluice-bench binlog`: MariaDB binlog → shaping (3 metrics per row) → blackhole sink, in rows/s; with
//! `--jsonl PATH`: every full row (before and after images) rendered as a JSON line through the file sink
//! instead (the same rendering work as `mariadb-binlog --verbose`).
//! `sluice-bench latency`: commit-to-push latency into the open-falcon stand-in at a steady write rate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use mysql_async::prelude::Queryable;
use sluice_connectors::sinks::blackhole::BlackholeSink;
use sluice_connectors::sinks::falcon::{FalconSink, FalconSinkConfig};
use sluice_connectors::sinks::file::{FileSink, FileSinkConfig};
use sluice_connectors::sources::mysql_binlog::{MysqlBinlogConfig, MysqlBinlogSource, StartFrom};
use sluice_connectors::sources::pg_logical::{PgLogicalConfig, PgLogicalSource};
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::shape::{RuleConfig, ShapeSettings, Shaper};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Pipeline, Sink};
use tokio_util::sync::CancellationToken;

// The same allocator as the `sluice` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

mod backup;
mod forecast;
mod rng;
mod tsdb;

#[derive(Subcommand)]
enum Cmd {
    /// Backups (bench/backup.sh).
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// The time-series store's workload (bench/monitoring.sh): the same samples into Sluice's store and
    /// an OpenMetrics file for promtool.
    TsdbLoad(tsdb::TsdbLoad),
    /// The disk-full forecast's error on held-out generated series (bench/forecast.sh).
    Forecast(forecast::ForecastBench),
    /// Read a binlog range through shaping into the blackhole sink; prints seconds and rows/s.
    Binlog {
        #[arg(long)]
        url: String,
        /// First binlog file of the workload.
        #[arg(long)]
        file: String,
        /// Row images the workload holds (the run ends when all are shaped and acknowledged).
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value = "bench")]
        db: String,
        /// Render every change as a JSON line into this file (e.g. /dev/null) instead of shaping.
        #[arg(long)]
        jsonl: Option<String>,
        /// Write every row into table `metrics` of this PostgreSQL (or MySQL) database through the database
        /// sink instead of shaping: rows, upserts and the checkpoint in one transaction per batch.
        #[arg(long)]
        target: Option<String>,
        /// Publish every change as an envelope to this NATS server (`nats://user:pw@host:port`) through the
        /// JetStream sink, into stream `--stream` (created), then print the stream's message count.
        #[arg(long)]
        nats: Option<String>,
        #[arg(long, default_value = "SLUICE_BENCH")]
        stream: String,
        /// Write every row into hourly CSV files in this folder through the file drop sink (no upload), then
        /// print the rows and bytes the files hold.
        #[arg(long)]
        files: Option<String>,
    },
    /// Stream a PostgreSQL slot through shaping into the blackhole sink; prints seconds and rows/s.
    Pg {
        #[arg(long)]
        url: String,
        #[arg(long)]
        slot: String,
        #[arg(long)]
        publication: String,
        #[arg(long)]
        rows: u64,
    },
    /// A ticket of N single-row UPDATE statements: the review (the ticket's submit) and a dry run on the
    /// target (its statements in a transaction that is rolled back), timed apart. `--url` names a MariaDB
    /// database holding table `t (id INT PRIMARY KEY, v INT)`.
    TicketDryRun {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 400_000)]
        statements: usize,
    },
    /// Batched mode: `UPDATE t SET v = v + 1` over table `t (id INT PRIMARY KEY, v INT)` of the `--url`
    /// database (MariaDB or PostgreSQL) in key ranges of `--chunk` rows, each committed with its checkpoint;
    /// throttling off. Prints rows/s.
    Batched {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        chunk: u64,
    },
    /// Backup mode: `UPDATE t SET v = v + 1` over the whole table in one transaction, its rows captured
    /// (MariaDB: read back from the binlog; PostgreSQL: RETURNING in the same transaction), and the
    /// rollback script made from them. Prints the run, the capture and the script generation apart.
    RollbackGen {
        #[arg(long)]
        url: String,
    },
    /// One 1,000,000-row transaction through shaping into the blackhole sink; prints peak RSS.
    Bigtx {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
    /// Write rows at a steady rate and measure commit-to-push latency at the falcon stand-in.
    Latency {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Write rows at a steady rate into MariaDB (`--url`) and sync them through the database sink into table
    /// `ticks` of the PostgreSQL database `--target`, which stamps each row's arrival (`clock_timestamp()`);
    /// prints the commit-to-row lag percentiles and the peak RSS.
    SyncLatency {
        #[arg(long)]
        url: String,
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

fn rule(db: &str, table: &str, columns: &[&str], metric: &str) -> RuleConfig {
    RuleConfig {
        db: db.into(),
        table: table.into(),
        value_columns: columns.iter().map(|c| c.to_string()).collect(),
        metric: metric.into(),
        endpoint: "{host}".into(),
        tags: String::new(),
        step: 60,
        counter_type: sluice_core::component::CounterType::Gauge,
        timestamp_column: None,
        enabled: true,
    }
}

async fn pipeline(
    url: &str,
    start: StartFrom,
    include: Vec<String>,
    rules: Option<Vec<RuleConfig>>,
    sink: Box<dyn Sink>,
    dir: &std::path::Path,
    status: Arc<PipelineStatus>,
) -> Result<Pipeline> {
    let source = MysqlBinlogSource::new(
        "bench",
        MysqlBinlogConfig {
            url: url.into(),
            connection: None,
            server_id: 4343,
            start,
            include,
            exclude: vec![],
            snapshot: vec![],
            reconnect_max: Duration::from_secs(5),
        },
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Pipeline {
        name: "bench".into(),
        source: Box::new(source),
        transforms: match rules {
            None => Vec::new(),
            Some(rules) => vec![Box::new(Shaper::new(&ShapeSettings { rules, config_table: None, deletes: false }).map_err(|e| anyhow::anyhow!("{e:?}"))?)],
        },
        sinks: vec![NamedSink::new("out", sink)],
        checkpoints: CheckpointStore::open(&dir.join("cp.db")).await?,
        dead_letter: DeadLetter::open(&dir.join("dl.jsonl")).await?,
        settings: RuntimeSettings { batch_max: batch_max(), ..RuntimeSettings::default() },
        status,
    })
}

/// A sink as a pipeline file's `[sinks.NAME]` section would build it (validated, then its `build`), in the
/// operator's scope of a file named `bench.toml`.
async fn bench_sink<C>(name: &str, section: &str) -> Result<Box<dyn Sink>>
where
    C: sluice_connectors::component::SinkSpec + serde::de::DeserializeOwned + 'static,
{
    let config: C = toml::from_str(section)?;
    let scope = sluice_connectors::scope::Scope::operator(std::path::Path::new("bench.toml"));
    let mut errors = Vec::new();
    config.validate(name, &scope, &mut errors);
    anyhow::ensure!(errors.is_empty(), "{errors:?}");
    let cx = sluice_connectors::component::SinkContext { pipeline: "bench", name, scope: &scope };
    Box::new(config).build(&cx).await.map_err(anyhow::Error::msg)
}

/// Data rows (lines after each file's header) and bytes of the CSV files under `dir`, open ones included.
fn csv_rows_and_bytes(dir: &std::path::Path) -> Result<(u64, u64)> {
    let (mut rows, mut bytes) = (0u64, 0u64);
    for sub in [dir.to_path_buf(), dir.join(".sluice").join("open")] {
        for entry in std::fs::read_dir(&sub)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                continue;
            }
            let data = std::fs::read(&path)?;
            bytes += data.len() as u64;
            rows += data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count().saturating_sub(1) as u64;
        }
    }
    Ok((rows, bytes))
}

/// `[runtime] batch_max` for the binlog runs: `SLUICE_BENCH_BATCH_MAX`, else the default (1000).
fn batch_max() -> usize {
    std::env::var("SLUICE_BENCH_BATCH_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(RuntimeSettings::default().batch_max)
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Backup(b) => backup::run(b).await?,
        Cmd::TsdbLoad(a) => tsdb::load(a).await?,
        Cmd::Forecast(a) => forecast::run(a)?,
        Cmd::Binlog { url, file, rows, db, jsonl, target, nats, stream, files } => {
            let dir = tempfile::tempdir()?;
            let status = Arc::new(PipelineStatus::default());
            let (sink, received, rules, expect): (Box<dyn Sink>, _, _, u64) = match (&jsonl, &target) {
                (None, None) if files.is_some() => {
                    let dir = files.clone().unwrap_or_default();
                    let sink = bench_sink::<sluice_connectors::sinks::file_drop::FileDropSinkConfig>(
                        "files",
                        &format!("dir = \"{dir}\"\nformat = \"csv\"\nperiod = \"1h\"\n"),
                    )
                    .await?;
                    let (sink, received) = Counted::wrap(sink);
                    (sink, received, None, rows)
                }
                (None, None) if nats.is_some() => {
                    let url = nats.clone().unwrap_or_default();
                    let sink = bench_sink::<sluice_connectors::sinks::nats::NatsSinkConfig>(
                        "nats",
                        &format!("url = \"{url}\"\nsubject = \"bench.{{$db}}.{{$table}}\"\nstream = \"{stream}\"\n"),
                    )
                    .await?;
                    let (sink, received) = Counted::wrap(sink);
                    (sink, received, None, rows)
                }
                (None, Some(target)) => {
                    let sink = bench_sink::<sluice_connectors::sinks::database::DatabaseSinkConfig>(
                        "target",
                        &format!("url = \"{target}\"\n[[tables]]\nfrom = \"{db}.metrics\"\nto = \"metrics\"\n"),
                    )
                    .await?;
                    let (sink, received) = Counted::wrap(sink);
                    (sink, received, None, rows)
                }
                (None, None) => {
                    let sink = BlackholeSink::default();
                    let received = sink.received.clone();
                    (Box::new(sink), received, Some(vec![rule(&db, "metrics", &["cpu", "mem", "disk"], "{$field}")]), rows * 3)
                }
                (Some(path), _) => {
                    let scope = sluice_connectors::scope::Scope::operator(std::path::Path::new("bench.toml"));
                    let file = FileSink::new(&FileSinkConfig { path: path.clone() }, &scope).await.map_err(anyhow::Error::msg)?;
                    let (sink, received) = Counted::wrap(Box::new(file));
                    (sink, received, None, rows)
                }
            };
            let p = pipeline(&url, StartFrom::Position { file, pos: 4 }, vec![format!("{db}.metrics")], rules, sink, dir.path(), status.clone()).await?;
            let stop = CancellationToken::new();
            let t0 = Instant::now();
            let handle = tokio::spawn(p.run(stop.clone()));
            wait_for_records(&received, expect, &handle, &status).await?;
            let secs = t0.elapsed().as_secs_f64();
            stop.cancel();
            handle.await??;
            println!(
                "sluice rows={} metrics={} seconds={secs:.3} rows_per_s={:.0}",
                status.events_in.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
                rows as f64 / secs
            );
            if let Some(dir) = &files {
                let (file_rows, bytes) = csv_rows_and_bytes(std::path::Path::new(dir))?;
                println!("file_rows={file_rows} file_bytes={bytes}");
            }
            if let Some(url) = &nats {
                // What the stream holds, read back from the server, then the stream goes.
                let parsed = url::Url::parse(url)?;
                let client = async_nats::ConnectOptions::new()
                    .user_and_password(parsed.username().to_string(), parsed.password().unwrap_or_default().to_string())
                    .connect(format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(4222)))
                    .await?;
                let js = async_nats::jetstream::new(client);
                let messages =
                    js.get_stream(&stream).await.map_err(|e| anyhow::anyhow!("{e}"))?.info().await.map_err(|e| anyhow::anyhow!("{e}"))?.state.messages;
                println!("stream_messages={messages}");
                js.delete_stream(&stream).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        Cmd::Pg { url, slot, publication, rows } => {
            let dir = tempfile::tempdir()?;
            let status = Arc::new(PipelineStatus::default());
            let sink = BlackholeSink::default();
            let received = sink.received.clone();
            let source = PgLogicalSource::new(
                "bench",
                PgLogicalConfig {
                    url,
                    connection: None,
                    slot: Some(slot),
                    publication: Some(publication),
                    tables: vec![],
                    snapshot: vec![],
                    reconnect_max: Duration::from_secs(5),
                },
            )
            .map_err(anyhow::Error::msg)?;
            let p = Pipeline {
                name: "bench".into(),
                source: Box::new(source),
                transforms: vec![Box::new(
                    Shaper::new(&ShapeSettings {
                        rules: vec![rule("public", "metrics", &["cpu", "mem", "disk"], "{$field}")],
                        config_table: None,
                        deletes: false,
                    })
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                )],
                sinks: vec![NamedSink::new("out", Box::new(sink))],
                checkpoints: CheckpointStore::open(&dir.path().join("cp.db")).await?,
                dead_letter: DeadLetter::open(&dir.path().join("dl.jsonl")).await?,
                settings: RuntimeSettings::default(),
                status: status.clone(),
            };
            let stop = CancellationToken::new();
            let t0 = Instant::now();
            let handle = tokio::spawn(p.run(stop.clone()));
            wait_for_records(&received, rows * 3, &handle, &status).await?;
            let secs = t0.elapsed().as_secs_f64();
            stop.cancel();
            handle.await??;
            println!(
                "sluice rows={} metrics={} seconds={secs:.3} rows_per_s={:.0}",
                status.events_in.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
                rows as f64 / secs
            );
        }
        Cmd::TicketDryRun { url, statements } => {
            let sql: String = (0..statements).map(|i| format!("UPDATE t SET v = v + 1 WHERE id = {};\n", i % 1000 + 1)).collect();
            let t0 = Instant::now();
            let review = sluice_review::review(&sql, sluice_review::SqlDialect::MySql);
            let review_s = t0.elapsed().as_secs_f64();
            let pieces: Vec<String> = sluice_review::split::split(&sql, sluice_review::SqlDialect::MySql).iter().map(|p| p.text(&sql).to_string()).collect();
            anyhow::ensure!(pieces.len() == statements, "split {} statements, expected {statements}", pieces.len());
            let spec = sluice_engines::ConnectSpec::from_url(&url).map_err(anyhow::Error::msg)?.with_timeout(Duration::from_secs(30));
            let t1 = Instant::now();
            let report =
                sluice_engines::execute::run(&spec, &pieces, sluice_engines::execute::RunMode::DryRun).await.map_err(|f| anyhow::anyhow!(f.message))?;
            let dry_s = t1.elapsed().as_secs_f64();
            let affected: u64 = report.statements.iter().filter_map(|s| s.affected_rows).sum();
            anyhow::ensure!(report.ok() && affected == statements as u64, "dry run: ok {} affected {affected}", report.ok());
            println!(
                "sluice statements={statements} findings={} review_s={review_s:.3} review_per_s={:.0} dry_run_s={dry_s:.3} dry_run_per_s={:.0} total_s={:.3}",
                review.findings.len(),
                statements as f64 / review_s,
                statements as f64 / dry_s,
                review_s + dry_s
            );
        }
        Cmd::Batched { url, chunk } => {
            let spec = sluice_engines::ConnectSpec::from_url(&url).map_err(anyhow::Error::msg)?.with_timeout(Duration::from_secs(30));
            let dialect = if spec.engine == sluice_core::Engine::Postgres { sluice_review::SqlDialect::Postgres } else { sluice_review::SqlDialect::MySql };
            let b = sluice_review::writes::batchable("UPDATE t SET v = v + 1", dialect).map_err(anyhow::Error::msg)?;
            let plan = vec![sluice_engines::batched::BatchStatement { schema: None, table: "t".into(), chunk: Box::new(move |k, lo, hi| b.chunk(k, lo, hi)) }];
            let limits = sluice_engines::batched::BatchLimits {
                rows: chunk,
                max_threads_running: u64::MAX,
                max_active_sessions: u64::MAX,
                max_lock_waits: u64::MAX,
                max_replica_lag: None,
                ..Default::default()
            };
            let (tx, _rx) = tokio::sync::watch::channel(Default::default());
            let job = format!("bench-{}", std::process::id());
            let t0 = Instant::now();
            let r = sluice_engines::batched::run(&spec, &job, &plan, &limits, &tx, &CancellationToken::new()).await.map_err(anyhow::Error::msg)?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "sluice engine={} rows={} chunks={} seconds={secs:.3} rows_per_s={:.0}",
                spec.engine,
                r.progress.rows,
                r.progress.chunks,
                r.progress.rows as f64 / secs
            );
        }
        Cmd::RollbackGen { url } => {
            use sluice_engines::capture::{self, TableWrite};
            use sluice_engines::rollback::{Backup, Guard, RowOp};
            let spec = sluice_engines::ConnectSpec::from_url(&url).map_err(anyhow::Error::msg)?.with_timeout(Duration::from_secs(60));
            let writes = vec![TableWrite { op: RowOp::Update, schema: None, table: "t".into(), alias: "t".into(), set_columns: vec!["v".into()] }];
            let t0 = Instant::now();
            let run = capture::run(&spec, &["UPDATE t SET v = v + 1".to_string()], &writes).await.map_err(anyhow::Error::msg)?;
            let run_s = t0.elapsed().as_secs_f64();
            anyhow::ensure!(run.report.ok(), "the run failed: {:?}", run.report);
            let affected = run.affected();
            let t1 = Instant::now();
            let backup = match &run.mark {
                Some(mark) => {
                    let mut b = capture::MysqlBackupBuilder::new(run.tables.clone());
                    sluice_connectors::sources::mysql_binlog::read_transaction(
                        &spec,
                        3_999_000_001,
                        &mark.file,
                        mark.pos,
                        &mark.gtid,
                        Duration::from_secs(60),
                        |ev| b.push(ev),
                    )
                    .await
                    .map_err(anyhow::Error::msg)?;
                    b.finish()
                }
                None => Backup { tables: run.tables.clone(), rows: run.rows },
            };
            let capture_s = t1.elapsed().as_secs_f64();
            let t2 = Instant::now();
            let script = sluice_engines::rollback::script(spec.engine, &backup, Guard::Guarded).map_err(anyhow::Error::msg)?;
            let script_s = t2.elapsed().as_secs_f64();
            anyhow::ensure!(
                backup.rows.len() as u64 == affected && script.len() as u64 >= affected,
                "{} images, {} statements for {affected} rows",
                backup.rows.len(),
                script.len()
            );
            let generation = if run.mark.is_some() { capture_s + script_s } else { script_s };
            println!(
                "sluice engine={} rows={affected} run_s={run_s:.3} capture_s={capture_s:.3} script_s={script_s:.3} generation_rows_per_s={:.0}",
                spec.engine,
                affected as f64 / generation
            );
        }
        Cmd::Bigtx { url, rows } => {
            let pool = mysql_async::Pool::new(url.as_str());
            let mut c = pool.get_conn().await?;
            c.query_drop("CREATE DATABASE IF NOT EXISTS sluice_bench_bigtx").await?;
            c.query_drop("CREATE TABLE IF NOT EXISTS sluice_bench_bigtx.metrics (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(64), cpu DOUBLE, mem DOUBLE, disk DOUBLE)").await?;
            let dir = tempfile::tempdir()?;
            let status = Arc::new(PipelineStatus::default());
            let sink = BlackholeSink::default();
            let received = sink.received.clone();
            let p = pipeline(
                &url,
                StartFrom::Now,
                vec!["sluice_bench_bigtx.metrics".into()],
                Some(vec![rule("sluice_bench_bigtx", "metrics", &["cpu", "mem", "disk"], "{$field}")]),
                Box::new(sink),
                dir.path(),
                status.clone(),
            )
            .await?;
            let stop = CancellationToken::new();
            let handle = tokio::spawn(p.run(stop.clone()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss_before = rss_mib().1;
            let t0 = Instant::now();
            // One statement, one transaction: MariaDB's SEQUENCE engine makes the rows.
            c.query_drop(format!(
                "INSERT INTO sluice_bench_bigtx.metrics (host, cpu, mem, disk) SELECT 'big', seq, seq, seq FROM sluice_bench_bigtx.seq_1_to_{rows}"
            ))
            .await?;
            wait_for_records(&received, rows * 3, &handle, &status).await?;
            let secs = t0.elapsed().as_secs_f64();
            stop.cancel();
            handle.await??;
            let (peak, _) = rss_mib();
            c.query_drop("DROP DATABASE sluice_bench_bigtx").await?;
            println!("sluice single {rows}-row transaction: {secs:.2} s (insert included), peak RSS {peak} MiB (before {rss_before} MiB)");
        }
        Cmd::SyncLatency { url, target, rate, seconds } => {
            let pool = mysql_async::Pool::new(url.as_str());
            let mut c = pool.get_conn().await?;
            c.query_drop("CREATE DATABASE IF NOT EXISTS sluice_bench_sync").await?;
            c.query_drop("DROP TABLE IF EXISTS sluice_bench_sync.ticks").await?;
            c.query_drop("CREATE TABLE sluice_bench_sync.ticks (id BIGINT AUTO_INCREMENT PRIMARY KEY, sent_us BIGINT NOT NULL)").await?;
            let (pg, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            pg.batch_execute(
                "DROP TABLE IF EXISTS ticks; CREATE TABLE ticks (id bigint PRIMARY KEY, sent_us bigint NOT NULL, arrived timestamptz NOT NULL DEFAULT clock_timestamp())",
            )
            .await?;
            let sink = bench_sink::<sluice_connectors::sinks::database::DatabaseSinkConfig>(
                "target",
                &format!("url = \"{target}\"\n[[tables]]\nfrom = \"sluice_bench_sync.ticks\"\nto = \"ticks\"\n"),
            )
            .await?;
            let dir = tempfile::tempdir()?;
            let status = Arc::new(PipelineStatus::default());
            let p = pipeline(&url, StartFrom::Now, vec!["sluice_bench_sync.ticks".into()], None, sink, dir.path(), status.clone()).await?;
            let stop = CancellationToken::new();
            let handle = tokio::spawn(p.run(stop.clone()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            // 100 transactions a second, each of rate/100 rows stamped with its send time.
            let per_tx = (rate / 100).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let t0 = Instant::now();
            let mut written = 0i64;
            while t0.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64;
                let values: Vec<String> = (0..per_tx).map(|_| format!("({now_us})")).collect();
                c.query_drop(format!("INSERT INTO sluice_bench_sync.ticks (sent_us) VALUES {}", values.join(","))).await?;
                written += per_tx as i64;
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let n: i64 = pg.query_one("SELECT count(*) FROM ticks", &[]).await?.get(0);
                if n >= written {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "only {n} of {written} rows arrived: {:?}", status.last_error.lock().unwrap());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.cancel();
            handle.await??;
            let row = pg
                .query_one(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) \
                     FROM (SELECT ((extract(epoch FROM arrived) * 1e6 - sent_us) / 1000.0)::float8 AS lag FROM ticks) l",
                    &[],
                )
                .await?;
            let (p50, p99, max): (f64, f64, f64) = (row.get(0), row.get(1), row.get(2));
            let (peak, _) = rss_mib();
            println!("sync lag rate={}/s rows={written} p50_ms={p50:.1} p99_ms={p99:.1} max_ms={max:.1} peak_rss_mib={peak}", written / seconds as i64);
        }
        Cmd::Latency { url, rate, seconds } => {
            let falcon = sluice_testkit::falcon::FalconReceiver::start().await;
            let pool = mysql_async::Pool::new(url.as_str());
            let mut c = pool.get_conn().await?;
            c.query_drop("CREATE DATABASE IF NOT EXISTS sluice_bench_latency").await?;
            c.query_drop("CREATE TABLE IF NOT EXISTS sluice_bench_latency.ticks (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(32), sent_ms BIGINT)")
                .await?;
            let dir = tempfile::tempdir()?;
            let status = Arc::new(PipelineStatus::default());
            let sink = FalconSink::new(
                &FalconSinkConfig { url: falcon.url.clone(), batch_max: std::num::NonZeroUsize::new(500).expect("not zero"), timeout: Duration::from_secs(10) },
                &sluice_connectors::scope::Scope::operator(std::path::Path::new("bench.toml")),
            )
            .map_err(anyhow::Error::msg)?;
            let p = pipeline(
                &url,
                StartFrom::Now,
                vec!["sluice_bench_latency.ticks".into()],
                Some(vec![rule("sluice_bench_latency", "ticks", &["sent_ms"], "tick")]),
                Box::new(sink),
                dir.path(),
                status.clone(),
            )
            .await?;
            let stop = CancellationToken::new();
            let handle = tokio::spawn(p.run(stop.clone()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            // 100 writes a second, each a transaction of rate/100 rows stamped with the send time.
            let per_tx = (rate / 100).max(1);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let t0 = Instant::now();
            let mut written = 0u64;
            while t0.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                let now_ms = now_ms();
                let values: Vec<String> = (0..per_tx).map(|_| format!("('h', {now_ms})")).collect();
                c.query_drop(format!("INSERT INTO sluice_bench_latency.ticks (host, sent_ms) VALUES {}", values.join(","))).await?;
                written += per_tx;
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while (falcon.count() as u64) < written && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.cancel();
            handle.await??;
            println!("latency: written={written} received={} (arrival times measured at the receiver)", falcon.count());
            let mut lat = falcon.latencies_ms();
            lat.sort_unstable();
            let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
            println!(
                "sluice commit-to-push rate={}/s p50_ms={} p99_ms={} max_ms={}",
                written / seconds,
                pct(0.50),
                pct(0.99),
                lat.last().copied().unwrap_or(0)
            );
        }
    }
    Ok(())
}

/// A sink that counts the row changes its inner sink accepted (the file sink does not count).
struct Counted {
    inner: Box<dyn Sink>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
}

impl Counted {
    /// `sink`, counting what it acknowledges: the wrapped sink and the counter.
    fn wrap(sink: Box<dyn Sink>) -> (Box<dyn Sink>, Arc<std::sync::atomic::AtomicU64>) {
        let delivered: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        (Box::new(Counted { inner: sink, delivered: delivered.clone() }), delivered)
    }
}

impl Sink for Counted {
    fn open(&mut self) -> futures_util::future::BoxFuture<'_, Result<(), sluice_pipeline::SinkError>> {
        self.inner.open()
    }

    fn flush(&mut self) -> futures_util::future::BoxFuture<'_, Result<(), sluice_pipeline::SinkError>> {
        self.inner.flush()
    }

    fn close(&mut self) -> futures_util::future::BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a sluice_pipeline::Batch,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<sluice_pipeline::Rejected>, sluice_pipeline::SinkError>> {
        Box::pin(async move {
            let rejected = self.inner.deliver(batch).await?;
            let records = &batch.records;
            // Row changes only: DDL events of the workload's tables are delivered too but are not rows.
            let rows = records
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    !rejected.iter().any(|x| x.index == *i) && matches!(r, sluice_core::component::Record::Change(c) if c.op != sluice_core::Operation::Ddl)
                })
                .count();
            self.delivered.fetch_add(rows as u64, Ordering::Relaxed);
            Ok(rejected)
        })
    }
}

/// Waits until the sink has `n` records, failing if the pipeline stops first.
async fn wait_for_records(
    received: &std::sync::atomic::AtomicU64,
    n: u64,
    handle: &tokio::task::JoinHandle<Result<(), sluice_pipeline::PipelineError>>,
    status: &PipelineStatus,
) -> Result<()> {
    // A run that stops making progress fails with the pipeline's last error instead of hanging the benchmark.
    let (mut seen, mut since) = (0, Instant::now());
    while received.load(Ordering::Relaxed) < n {
        if handle.is_finished() {
            anyhow::bail!("the pipeline stopped early: {:?}", status.last_error.lock().unwrap());
        }
        let now = received.load(Ordering::Relaxed);
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("no progress for 60 s at {now} of {n} records; last error: {:?}", status.last_error.lock().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// (peak, current) resident set of this process in MiB.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
