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
    /// Collection intervals, timeouts and the embedded time-series store's retention and budget.
    pub monitor: MonitorSettings,
}

/// `[monitor]` in sluice.toml.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Whether `serve` runs the collectors and the alert evaluation (the query API works either way).
    pub collect: bool,
    /// Default scrape interval (an instance label `sluice.monitor.interval` overrides it).
    pub interval: Duration,
    /// Bound on connecting and authenticating for a scrape.
    pub connect_timeout: Duration,
    /// Bound on each collector query.
    pub query_timeout: Duration,
    /// How often alert rules are evaluated.
    pub eval_interval: Duration,
    pub tsdb: sluice_tsdb::TsdbConfig,
    /// Forward collected samples by Prometheus remote write 1.0 to this URL (`monitor::export`).
    pub remote_write_url: Option<String>,
    /// Forward collected samples to this open-falcon agent push URL (`monitor::export`).
    pub falcon_push_url: Option<String>,
    /// Answer the query API from this Prometheus-compatible store instead of the embedded one
    /// (`monitor::upstream`).
    pub read_url: Option<String>,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            collect: true,
            interval: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            eval_interval: Duration::from_secs(15),
            tsdb: Default::default(),
            remote_write_url: None,
            falcon_push_url: None,
            read_url: None,
        }
    }
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
            monitor: MonitorSettings::default(),
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
    /// The embedded time-series store, opened at first use (`<data dir>/tsdb.sqlite`).
    tsdb: Arc<tokio::sync::OnceCell<Arc<sluice_tsdb::Tsdb>>>,
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
            tsdb: Arc::default(),
        }
    }

    /// The embedded time-series store, opened on first use.
    pub async fn tsdb(&self) -> Result<Arc<sluice_tsdb::Tsdb>, String> {
        self.tsdb
            .get_or_try_init(|| async {
                let path = self.settings.data_dir.join("tsdb.sqlite");
                sluice_tsdb::Tsdb::open(&path, self.settings.monitor.tsdb.clone()).await.map(Arc::new).map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }
}
