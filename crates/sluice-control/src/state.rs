use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_core::egress::EgressPolicy;
use sluice_store::Store;

use crate::policy::{RouteRule, route_table};

/// Settings of the API that are not in the store.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Bound on an instance check (connect, authenticate, query).
    pub check_timeout: Duration,
    /// Where managed pipelines keep their checkpoints and dead letters.
    pub data_dir: std::path::PathBuf,
    /// The variables `${VAR}` may name in pipeline specs sent through the API (captured at start from the
    /// names an admin listed; never Sluice's own).
    pub pipeline_env: Arc<BTreeMap<String, String>>,
    /// Where managed pipelines and instance checks may connect.
    pub egress: Arc<EgressPolicy>,
    /// How long a running ticket job is this server's without a heartbeat.
    pub exec_lease: Duration,
    /// Batched tickets' chunk size, pause and throttling limits.
    pub batch: sluice_engines::batched::BatchLimits,
    /// DDL tickets altering a MySQL/MariaDB table at least this large run through pt-online-schema-change
    /// (`None`: online DDL off).
    pub online_ddl_min_bytes: Option<u64>,
    /// Folders (besides the data dir's `repositories/`) where local backup repositories may be registered.
    pub backup_local_roots: Vec<std::path::PathBuf>,
}

impl ApiSettings {
    /// Defaults around a data dir: 5 s checks, no offered variables, the default egress policy.
    pub fn new(data_dir: std::path::PathBuf) -> Self {
        Self {
            check_timeout: Duration::from_secs(5),
            data_dir,
            pipeline_env: Arc::default(),
            egress: Arc::default(),
            exec_lease: Duration::from_secs(30),
            batch: Default::default(),
            online_ddl_min_bytes: None,
            backup_local_roots: Vec::new(),
        }
    }
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: ApiSettings,
    pub pipelines: Arc<crate::pipelines::PipelineManager>,
    pub(crate) routes: Arc<HashMap<(Method, &'static str), RouteRule>>,
    pub(crate) metrics: PrometheusHandle,
    /// Token id → when its `last_used_at` was last written, so it is written about once a minute, not on
    /// every request.
    pub(crate) token_touched: Arc<Mutex<HashMap<String, Instant>>>,
    /// Wakes the execution worker when a ticket starts.
    pub(crate) exec_wake: crate::tickets::exec::Wake,
    /// Wakes the backup worker (a backup was asked for, or one ended).
    pub(crate) backup_wake: crate::backups::worker::Wake,
    /// This server's log archivers.
    pub(crate) archivers: Arc<crate::backups::archive::ArchiveManager>,
    /// Which backup alerts this server raised.
    pub(crate) backup_health: Arc<crate::backups::health::Health>,
    /// Rendered ticket-list pages, by caller scope and query, each with the tickets' generation it was read
    /// at (see `Store::ticket_generation`): a page is served again only while no ticket changed since.
    pub(crate) ticket_pages: Arc<Mutex<HashMap<String, (u64, axum::body::Bytes)>>>,
}

impl AppState {
    pub fn new(store: Store, settings: ApiSettings) -> Self {
        let routes = route_table().into_iter().map(|r| ((r.method.clone(), r.path), r)).collect();
        Self {
            pipelines: Arc::new(crate::pipelines::PipelineManager::new(store.clone(), &settings)),
            store,
            settings,
            routes: Arc::new(routes),
            metrics: crate::telemetry::prometheus_handle(),
            token_touched: Arc::new(Mutex::new(HashMap::new())),
            exec_wake: Arc::default(),
            backup_wake: Arc::default(),
            archivers: crate::backups::archive::ArchiveManager::new(),
            backup_health: Arc::default(),
            ticket_pages: Arc::default(),
        }
    }
}
