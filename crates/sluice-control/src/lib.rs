//! Sluice's control plane: the HTTP API over the store, with authentication, roles and audit on every route.
//!
//! `app(state)` builds the router; tests call it with `tower::ServiceExt::oneshot`. `serve` runs it on a
//! listener until the shutdown token fires.

pub mod app;
pub mod auth;
pub mod backups;
pub mod error;
pub mod extract;
pub mod monitor;
pub mod notify;
pub mod pipelines;
pub mod policy;
pub mod review;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tickets;

pub use app::{app, openapi};
pub use state::{ApiSettings, AppState};

/// Serves the API until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, shutdown: tokio_util::sync::CancellationToken) -> std::io::Result<()> {
    // Histograms buffer their samples until drained: without this they grow with every request.
    let handle = state.metrics.clone();
    let upkeep_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => handle.run_upkeep(),
                _ = upkeep_stop.cancelled() => break,
            }
        }
    });
    // Every pipeline that should run, and whose lease this server gets, starts now; the loop keeps leases.
    state.pipelines.reconcile().await;
    let leases = tokio::spawn(state.pipelines.clone().maintain(shutdown.clone()));
    let worker = tickets::exec::spawn_worker(state.clone(), shutdown.clone());
    let backup_worker = backups::worker::spawn_worker(state.clone(), shutdown.clone());
    let dispatcher = notify::spawn_dispatcher(state.clone(), shutdown.clone());
    let collector = state.settings.monitor.collect.then(|| monitor::collector::spawn(state.clone(), shutdown.clone()));
    let alerting = state.settings.monitor.collect.then(|| monitor::alerting::engine::spawn(state.clone(), shutdown.clone()));
    let export = monitor::export::spawn(state.clone(), shutdown.clone());
    let pipelines = state.pipelines.clone();
    let served = axum::serve(listener, app(state)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    let _ = leases.await;
    pipelines.shutdown_all().await;
    let _ = worker.await;
    let _ = backup_worker.await;
    let _ = dispatcher.await;
    for task in [collector, alerting, export].into_iter().flatten() {
        let _ = task.await;
    }
    served
}
