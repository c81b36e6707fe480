//! `sluice serve`: open the store, make sure an admin exists, serve the API until SIGINT/SIGTERM.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;

use anyhow::{Context, Result, bail};
use sluice_control::{ApiSettings, AppState};
use sluice_core::{Role, Secret};
use sluice_store::audit::AuditEntry;
use sluice_store::{KeySource, OpenOptions, Store, StoreError, StoreLocation};
use tokio_util::sync::CancellationToken;

use crate::config::ServeSettings;

/// Where the store and its key are, from the settings and environment.
/// `read_cache`: for `serve` (the single writer of a SQLite store, which holds the data dir's lock; on PostgreSQL the caches follow the other servers' writes through LISTEN/NOTIFY).
pub fn store_options(data_dir: &std::path::Path, store: Option<&str>, max_connections: u32, read_cache: bool) -> OpenOptions {
    let key = match std::env::var("SLUICE_MASTER_KEY") {
        Ok(k) if !k.is_empty() => KeySource::Env(Secret::new(k)),
        _ => KeySource::File(data_dir.join("master.key")),
    };
    let location = match store {
        Some(s) => StoreLocation::parse(s),
        None => StoreLocation::Sqlite(data_dir.join("sluice.db")),
    };
    OpenOptions { location, key, max_connections, read_cache }
}

pub fn ensure_data_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("cannot create data directory {}", dir.display()))
}

pub async fn run(settings: ServeSettings) -> Result<()> {
    ensure_data_dir(&settings.data_dir)?;
    let _lock = if settings.store.is_none() { Some(lock_data_dir(&settings.data_dir)?) } else { None };
    let opened = Store::open(store_options(&settings.data_dir, settings.store.as_deref(), 8, true)).await.map_err(refusal)?;
    let store = opened.store;
    tracing::info!(store = %store.location(), created = opened.created, "store open");
    bootstrap_admin(&store).await?;
    if let Ok(report) = store.verify_audit().await {
        // Logged at every start so the head can be compared later: a truncated log shows up as a head that
        // went backwards.
        tracing::info!(head_seq = report.head_seq, head_hash = %report.head_hash, breaks = report.breaks.len(), "audit log head");
        if !report.ok() {
            tracing::warn!(breaks = report.breaks.len(), "audit log chain is broken; run `sluice audit verify`");
        }
    }
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    println!("sluice listening on http://{addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%addr, "listening");

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    let state = AppState::new(
        store.clone(),
        ApiSettings {
            check_timeout: settings.check_timeout,
            data_dir: settings.data_dir.clone(),
            pipeline_env: std::sync::Arc::new(settings.pipeline_env.clone()),
            egress: std::sync::Arc::new(settings.egress.clone()),
            exec_lease: settings.exec_lease,
            batch: settings.batch.clone(),
            online_ddl_min_bytes: settings.online_ddl_min_bytes,
            backup_local_roots: settings.backup_local_roots.clone(),
            monitor: settings.monitor.clone(),
        },
    );
    sluice_control::serve(listener, state, shutdown).await.context("server failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// One `sluice serve` per SQLite store: its read caches assume it is the only writer. The lock is released
/// by the kernel when the process ends, however it ends.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join("sluice.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another `sluice serve` is already using {}; refusing to start", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Store errors that mean "refuse to start" keep their own message; others get context.
fn refusal(e: StoreError) -> anyhow::Error {
    anyhow::Error::new(e).context("refusing to start")
}

pub async fn signal_shutdown(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    token.cancel();
}

/// On an empty store: create the `admin` user and its first token (from `SLUICE_ADMIN_TOKEN`, or new and
/// printed once on stdout).
async fn bootstrap_admin(store: &Store) -> Result<()> {
    let preset = std::env::var("SLUICE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    if store.user_count().await? > 0 {
        if let Some(t) = &preset
            && store.authenticate(t).await?.is_none()
        {
            tracing::warn!("SLUICE_ADMIN_TOKEN is set but is not a valid token of this store; it applies only to an empty store");
        }
        return Ok(());
    }
    if let Some(t) = &preset
        && (t.len() < 24 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        bail!("SLUICE_ADMIN_TOKEN must be at least 24 characters with no spaces");
    }
    let entry = AuditEntry {
        actor: "system".into(),
        action: "bootstrap.admin".into(),
        target: None,
        outcome: "ok".into(),
        detail: Some(serde_json::json!({ "token_source": if preset.is_some() { "SLUICE_ADMIN_TOKEN" } else { "generated" } })),
        request_id: None,
    };
    let user = match store.create_user("admin", Role::Admin, &entry).await {
        Ok(u) => u,
        // Another node sharing the PostgreSQL store bootstrapped first.
        Err(StoreError::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let given = preset.clone().map(Secret::new);
    let (_, token) = store.create_token(&user.id, "bootstrap", None, given, &AuditEntry { action: "token.create".into(), ..entry }).await?;
    if preset.is_some() {
        println!("created user `admin` with the token from SLUICE_ADMIN_TOKEN");
    } else {
        // Shown once, on stdout only (never through the logger); the store keeps only its hash.
        println!("created user `admin`; its API token (shown once, keep it safe):\n\n    {}\n", token.expose());
    }
    Ok(())
}
