//! The control-plane store. One set of runtime queries (sqlx `Any`) serves both backends: an embedded
//! SQLite file (the default) and PostgreSQL (several `sluice serve` nodes sharing work).
//!
//! Opening a store checks, before it changes anything, that the database is Sluice's (or empty), that its
//! schema is not newer than this binary, and that the master key decrypts the store's key check.

pub mod alerts;
pub mod audit;
pub mod backup_catalog;
pub mod backups;
mod cache;
mod chunks;
mod coherence;
pub mod crypto;
mod error;
pub mod exports;
pub mod instances;
pub mod jobs;
mod migrations;
pub mod notify;
pub mod pipelines;
pub mod projects;
pub mod stats;
pub mod tickets;
pub mod users;
pub mod windows;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Row};
use tokio::sync::{Mutex, MutexGuard};

pub use crate::cache::Changes;
pub use crate::crypto::{KeySource, MasterKey, SecretCipher};
pub use crate::error::StoreError;

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL (`postgres://…`). Its password is never printed.
    Postgres(sluice_core::Secret<String>),
}

impl StoreLocation {
    /// Parses `--store`: `postgres://…`/`postgresql://…`, `sqlite://PATH`, or a plain file path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StoreLocation::Postgres(sluice_core::Secret::new(text.to_string()))
        } else {
            StoreLocation::Sqlite(PathBuf::from(text.strip_prefix("sqlite://").unwrap_or(text)))
        }
    }

    /// A printable description that never includes a password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(p) => p.display().to_string(),
            StoreLocation::Postgres(url) => redact_url(url.expose()),
        }
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".into() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let host = host.split('?').next().unwrap_or(host);
    match auth {
        Some(a) => {
            let user = a.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => format!("{scheme}://{host}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Row-lock suffix for a `SELECT` that must serialize writers (SQLite serializes writers already).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cipher: SecretCipher,
    location: String,
    /// SQLite allows one writer; taking this before a write transaction turns "database is locked" races
    /// between this process's tasks into an orderly queue. PostgreSQL needs no such lock.
    write_lock: Arc<Mutex<()>>,
    pub(crate) cache: Arc<cache::ReadCache>,
    /// The PostgreSQL store's cache listener; it stops when the last clone of the store is dropped.
    _listener: Option<Arc<coherence::Listener>>,
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls back.
pub struct WriteTx<'a> {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) backend: Backend,
    cache: Arc<cache::ReadCache>,
    /// What the transaction may make stale in the read caches (see `cache`).
    changes: Changes,
    _guard: Option<MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    /// Marks what this transaction changes that a read cache may hold: this process clears it right after
    /// the commit, and on PostgreSQL the commit notifies every other server.
    pub(crate) fn changed(&mut self, c: Changes) {
        self.changes =
            Changes { tokens: self.changes.tokens || c.tokens, registry: self.changes.registry || c.registry, tickets: self.changes.tickets || c.tickets };
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres && self.changes.any() {
            // Delivered to the listeners when (and only if) the transaction commits.
            sqlx::query(&format!("NOTIFY {}, '{}'", coherence::CHANNEL, self.changes.payload())).execute(&mut *self.tx).await?;
        }
        self.tx.commit().await?;
        self.cache.apply(self.changes);
        Ok(())
    }
}

/// The result of opening a store.
pub struct Opened {
    pub store: Store,
    /// True when this call created the store (and, with a file key source, the key file).
    pub created: bool,
}

pub struct OpenOptions {
    pub location: StoreLocation,
    pub key: KeySource,
    pub max_connections: u32,
    /// Serve token and registry reads and the tickets' generation from memory (see `cache`): on SQLite only
    /// in the process that is the store's single writer, as `sluice serve` is; on PostgreSQL while this
    /// process listens for the other servers' changes.
    pub read_cache: bool,
}

/// WAL lets readers run beside the one writer; the busy timeout covers other processes (`sluice audit
/// verify` beside a running server).
const SQLITE_PRAGMAS: &[&str] = &["PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=10000", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL"];

const KEY_CHECK_CONTEXT: &str = "sluice/key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"sluice master key check v1";

enum Inspection {
    Empty,
    Sluice { version: i64, key_check: String },
}

impl Store {
    pub async fn open(opts: OpenOptions) -> Result<Opened, StoreError> {
        install_default_drivers();
        let location = opts.location.describe();
        let (url, backend) = match &opts.location {
            StoreLocation::Sqlite(path) => {
                check_sqlite_header(path)?;
                (format!("sqlite://{}?mode=rwc", path.display()), Backend::Sqlite)
            }
            StoreLocation::Postgres(url) => (url.expose().clone(), Backend::Postgres),
        };
        // Inspect (and check the key) before anything can write: on SQLite through a read-only connection,
        // because even `PRAGMA journal_mode` rewrites the file header.
        let inspection = match &opts.location {
            StoreLocation::Sqlite(path) if !path.exists() => Inspection::Empty,
            StoreLocation::Sqlite(path) => {
                let ro = sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
                    .await
                    .map_err(|source| StoreError::Connect { location: location.clone(), source })?;
                let mut ro = ro;
                let found = inspect(&mut ro, backend, &location).await;
                ro.close().await.ok();
                found?
            }
            StoreLocation::Postgres(_) => {
                let mut conn = sqlx::AnyConnection::connect(&url).await.map_err(|source| StoreError::Connect { location: location.clone(), source })?;
                let found = inspect(&mut conn, backend, &location).await;
                conn.close().await.ok();
                found?
            }
        };
        let key = MasterKey::load(&opts.key)?;
        let (cipher, created) = match (&inspection, key) {
            (Inspection::Sluice { key_check, .. }, Some(key)) => {
                let cipher = SecretCipher::new(&key);
                if cipher.decrypt(KEY_CHECK_CONTEXT, key_check).as_deref() != Ok(KEY_CHECK_PLAINTEXT) {
                    return Err(StoreError::WrongKey { key: opts.key.describe(), location });
                }
                (cipher, false)
            }
            (Inspection::Sluice { .. }, None) => {
                return Err(StoreError::KeyMissing { key: opts.key.describe(), location });
            }
            (Inspection::Empty, Some(key)) => (SecretCipher::new(&key), true),
            (Inspection::Empty, None) => {
                let KeySource::File(path) = &opts.key else { unreachable!("env keys always load") };
                (SecretCipher::new(&MasterKey::create_file(path)?), true)
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::Executor::execute(&mut *conn, *pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            // A future dropped inside sqlx's `begin` (a client that disconnected, a stopped worker) can hand its
            // connection back still in the transaction, with no `Transaction` left to end it (sqlx 0.8, issue
            // #3932). On SQLite that is `BEGIN IMMEDIATE`: the file's write lock, held until the pool closes,
            // and every other writer fails with "database is locked". Such a connection is closed, which rolls
            // it back. A transaction dropped normally queued its rollback before the return: the ping lets
            // that run first, so only a stranded one is closed.
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    if conn.is_in_transaction() {
                        tracing::warn!("closing a store connection returned inside a transaction (a cancelled write)");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect { location: location.clone(), source })?;
        let cache = Arc::new(cache::ReadCache::new(backend == Backend::Sqlite && opts.read_cache));
        let listener = (backend == Backend::Postgres && opts.read_cache).then(|| coherence::spawn(&url, pool.clone(), cache.clone()));
        let store = Store { pool, backend, cipher, location, write_lock: Arc::new(Mutex::new(())), cache, _listener: listener.map(Arc::new) };
        let from = match inspection {
            Inspection::Empty => 0,
            Inspection::Sluice { version, .. } => version,
        };
        store.migrate(from).await?;
        if created {
            let check = store.cipher.encrypt(KEY_CHECK_CONTEXT, KEY_CHECK_PLAINTEXT);
            let mut tx = store.begin_write().await?;
            for (k, v) in [("app", "sluice"), ("key_check", check.as_str()), ("created_at", &now_ms().to_string())] {
                sqlx::query("INSERT INTO sluice_meta (key, value) VALUES ($1, $2)").bind(k).bind(v.to_string()).execute(&mut *tx.tx).await?;
            }
            tx.commit().await?;
        }
        Ok(Opened { store, created })
    }

    async fn migrate(&self, from: i64) -> Result<(), StoreError> {
        for m in migrations::MIGRATIONS.iter().filter(|m| m.version > from) {
            let mut tx = self.begin_write().await?;
            for sql in m.sql_for(self.backend) {
                if !sql.trim().is_empty() {
                    sqlx::raw_sql(sql).execute(&mut *tx.tx).await?;
                }
            }
            let upsert = "INSERT INTO sluice_meta (key, value) VALUES ('schema_version', $1) \
                          ON CONFLICT (key) DO UPDATE SET value = excluded.value";
            sqlx::query(upsert).bind(m.version.to_string()).execute(&mut *tx.tx).await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "store migrated");
        }
        Ok(())
    }

    /// Starts a write transaction (serialized in-process on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        };
        // SQLite: take the write lock at BEGIN, where the busy timeout applies. A deferred transaction that read
        // first and then writes cannot wait: SQLite fails the upgrade at once while another connection holds the
        // write lock (say, a failed transaction whose rollback sqlx runs after its drop released our mutex), and
        // an audit entry written that way was lost under load.
        // The BEGIN runs to its end in a task of its own, so that a caller dropped meanwhile (a client that
        // disconnected, a stopped worker) drops a whole `Transaction`, which rolls back: sqlx 0.8's `begin` has
        // a window where a cancelled future leaves the session in a transaction with nothing to end it (issues
        // #3932 on SQLite, #4385 on PostgreSQL). The pool's release check (`open`) is the second line.
        let (pool, backend) = (self.pool.clone(), self.backend);
        let tx = tokio::spawn(async move {
            match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            }
        })
        .await
        .map_err(|e| StoreError::Query(sqlx::Error::Protocol(format!("beginning a transaction: {e}"))))??;
        Ok(WriteTx { tx, backend: self.backend, cache: self.cache.clone(), changes: Changes::default(), _guard: guard })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn cipher(&self) -> &SecretCipher {
        &self.cipher
    }

    /// Printable location (no password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Readiness: the store answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn check_sqlite_header(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let mut header = [0u8; 16];
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let n = f.read(&mut header).unwrap_or(0);
            // An empty file is a database SQLite has not written yet.
            if n == 0 {
                return Ok(());
            }
            if n < 16 || &header != b"SQLite format 3\0" {
                return Err(StoreError::NotSqlite { path: path.to_path_buf() });
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

async fn inspect(conn: &mut sqlx::AnyConnection, backend: Backend, location: &str) -> Result<Inspection, StoreError> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let rows = sqlx::query(sql).fetch_all(&mut *conn).await.map_err(|source| match &source {
        sqlx::Error::Database(db) if db.message().contains("not a database") => StoreError::NotSqlite { path: PathBuf::from(location) },
        _ => StoreError::Connect { location: location.to_string(), source },
    })?;
    let tables: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("name")).collect::<Result<_, _>>()?;
    if tables.is_empty() {
        return Ok(Inspection::Empty);
    }
    if !tables.iter().any(|t| t == "sluice_meta") {
        let mut shown = tables.clone();
        shown.truncate(5);
        return Err(StoreError::Foreign { location: location.to_string(), tables: shown.join(", ") });
    }
    let meta = sqlx::query("SELECT key, value FROM sluice_meta").fetch_all(&mut *conn).await?;
    let get = |k: &str| meta.iter().find(|r| r.try_get::<String, _>("key").ok().as_deref() == Some(k)).and_then(|r| r.try_get::<String, _>("value").ok());
    if get("app").as_deref() != Some("sluice") {
        return Err(StoreError::Foreign { location: location.to_string(), tables: "sluice_meta without app=sluice".into() });
    }
    let version: i64 = get("schema_version").and_then(|v| v.parse().ok()).ok_or_else(|| StoreError::Corrupt { what: "sluice_meta.schema_version".into() })?;
    if version > migrations::LATEST {
        return Err(StoreError::NewerSchema { location: location.to_string(), found: version, supported: migrations::LATEST });
    }
    let key_check = get("key_check").ok_or_else(|| StoreError::Corrupt { what: "sluice_meta.key_check".into() })?;
    Ok(Inspection::Sluice { version, key_check })
}

/// Milliseconds since the Unix epoch: the store's time representation.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A new time-ordered id (UUIDv7), so `ORDER BY id` is creation order and cursors are stable.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db?sslmode=require"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
