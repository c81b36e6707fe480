//! The time-series store's benchmark workload (bench/monitoring.sh): one deterministic set of series,
//! written both as an OpenMetrics file (for `promtool tsdb create-blocks-from openmetrics`, so Prometheus's
//! TSDB holds exactly the same samples) and into Sluice's store; prints samples and bytes.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use sluice_tsdb::{Labels, Sample, Tsdb, TsdbConfig};

use crate::rng::Rng;

#[derive(Debug, Args)]
pub struct TsdbLoad {
    /// Sluice's data dir (the store is `tsdb.sqlite` in it).
    #[arg(long)]
    pub dir: PathBuf,
    /// The OpenMetrics file to write for promtool.
    #[arg(long)]
    pub openmetrics: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    pub interval: i64,
}

/// Series i's kind: 40% counters (integer increments), 40% gauges (two decimals, daily cycle and noise),
/// 20% near-constant gauges (a configuration value that changes rarely) — the mix a database collector writes.
fn value(i: usize, step: i64, state: &mut [f64], rng: &mut Rng) -> f64 {
    match i % 5 {
        0 | 1 => {
            state[i] += (rng.next() % 50) as f64;
            state[i]
        }
        2 | 3 => {
            let day = (step as f64 / 1440.0 * std::f64::consts::TAU).sin();
            ((50.0 + 20.0 * day + rng.unit() * 5.0) * 100.0).round() / 100.0
        }
        _ => {
            if rng.next().is_multiple_of(500) {
                state[i] += 1.0;
            }
            state[i]
        }
    }
}

pub async fn load(a: TsdbLoad) -> Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let db = Tsdb::open(&a.dir.join("tsdb.sqlite"), TsdbConfig::default()).await?;
    let mut om = std::io::BufWriter::new(std::fs::File::create(&a.openmetrics)?);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    // End a little before now, on a whole interval, so both stores hold the same past.
    let end = (now as i64 / a.interval - 1) * a.interval;
    let steps = a.days * 86_400 / a.interval;
    let start = end - (steps - 1) * a.interval;
    let labels: Vec<Labels> = (0..a.series)
        .map(|i| {
            let kind = ["counter", "counter", "gauge", "gauge", "config"][i % 5];
            Labels::metric("bench_metric", &[("series", &format!("s{i:04}")), ("kind", kind), ("instance", &format!("db{}", i % 50))])
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut state = vec![0.0; a.series];
    // OpenMetrics wants each metric family's samples together: one pass per series, from a stored copy.
    let mut per_series: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(steps as usize); a.series];
    let mut batch: Vec<Sample> = Vec::with_capacity(a.series * 10);
    let t0 = std::time::Instant::now();
    for s in 0..steps {
        let ts = (start + s * a.interval) * 1000;
        for (i, l) in labels.iter().enumerate() {
            let v = value(i, s, &mut state, &mut rng);
            per_series[i].push((ts, v));
            batch.push(Sample { labels: l.clone(), ts, value: v });
        }
        if batch.len() >= a.series * 10 {
            db.append(&batch).await?;
            batch.clear();
        }
    }
    db.append(&batch).await?;
    db.seal_all().await?;
    db.checkpoint().await?;
    let load_secs = t0.elapsed().as_secs_f64();
    writeln!(om, "# TYPE bench_metric gauge")?;
    for (i, l) in labels.iter().enumerate() {
        let label_text: Vec<String> = l.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        for (ts, v) in &per_series[i] {
            writeln!(om, "bench_metric{{{}}} {v} {}", label_text.join(","), *ts / 1000)?;
        }
    }
    writeln!(om, "# EOF")?;
    om.flush()?;
    let usage = db.usage().await?;
    let file_bytes = std::fs::metadata(a.dir.join("tsdb.sqlite"))?.len();
    let raw_bytes = db.tier_bytes(0).await?;
    let samples = a.series as i64 * steps;
    println!(
        "samples {samples} series {} load_seconds {load_secs:.1} file_bytes {file_bytes} live_bytes {} raw_chunk_bytes {raw_bytes} start {} end {}",
        usage.series, usage.bytes, start, end
    );
    Ok(())
}
