//! `sluice run PIPELINE.toml`: the data plane alone, checkpoints in a SQLite file beside the pipeline file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use sluice_pipeline::status::PipelineStatus;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct RunCmd {
    /// The pipeline file.
    pub file: PathBuf,
    /// Validate the file (every error, with its path) and exit without connecting anywhere.
    #[arg(long)]
    pub check: bool,
}

pub async fn run(cmd: RunCmd) -> Result<i32> {
    let loaded = match sluice_connectors::pipeline_file::load(&cmd.file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if cmd.check {
        println!(
            "{}: ok (pipeline `{}`, {} sink(s), checkpoints in {}, dead letters in {})",
            cmd.file.display(),
            loaded.name,
            loaded.config.sinks.len(),
            loaded.checkpoint.display(),
            loaded.dead_letter.display()
        );
        return Ok(0);
    }
    let status = Arc::new(PipelineStatus::default());
    let pipeline = loaded.build(status.clone()).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::serve::signal_shutdown(shutdown.clone()));
    let reporter = tokio::spawn(report(status.clone(), shutdown.clone()));
    let result = pipeline.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = reporter.await;
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

/// A status line every 10 seconds.
async fn report(status: Arc<PipelineStatus>, shutdown: CancellationToken) {
    let mut last = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        let events = status.events_in.load(Ordering::Relaxed);
        tracing::info!(
            events = events,
            events_per_s = (events - last) as f64 / 10.0,
            records_out = status.records_out.load(Ordering::Relaxed),
            shape_errors = status.shape_errors.load(Ordering::Relaxed),
            dead_letters = status.dead_letters.load(Ordering::Relaxed),
            lag_s = status.lag_seconds().unwrap_or(0.0),
            "pipeline status"
        );
        // Every sink that is not keeping up, by name, with what waits for it.
        for (name, h) in status.sinks.lock().expect("status lock").iter().filter(|(_, h)| h.state != "ok") {
            tracing::warn!(sink = %name, state = h.state, queued_batches = h.queued_batches, buffered_bytes = h.buffered_bytes,
                error = h.last_error.as_deref().unwrap_or(""), "sink impaired");
        }
        last = events;
    }
}
