//! The embedded store: one SQLite file (`tsdb.sqlite` in the data dir) beside the control-plane store.
//!
//! - `series`: every label set ever written, with its id. The label index (postings) lives in memory.
//! - `head`: samples not yet in a chunk, one row each — the write-ahead log: [`Tsdb::append`] returns only
//!   after its transaction commits, so an acknowledged sample survives a killed process (WAL journal,
//!   `synchronous = NORMAL`: a power cut may lose the last transactions, a crash does not).
//! - `chunks`: compressed runs per series and tier, each Gorilla's or decimal ([`crate::chunk`]). Three tiers: raw samples,
//!   then 1-minute and 1-hour rollups made **when data ages out** of the finer tier (its retention, or the
//!   disk budget): a chunk is thinned to the first sample of each minute (then hour) and moves down a tier.
//!   Nothing is stored twice while it is fresh. Rollups suit instant queries and counters'
//!   `rate`/`increase` over long ranges (an extreme inside a bucket is not kept — `max_over_time` over
//!   rollup-only history sees one sample a bucket).
//!
//! [`Tsdb::maintain`] seals stale heads, moves chunks past each tier's retention down a tier (dropping them
//! past the last), and enforces the disk budget the same way, oldest first, reclaiming pages with
//! incremental vacuum. Queries stitch tiers: where raw history has gone, the rollups answer.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::Mutex;

use crate::index::Index;
use crate::labels::{Labels, METRIC_NAME};
use crate::{chunk, gorilla};

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("time-series store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("time-series store: chunk of series {series} (tier {tier}, from {min_ts}) is unreadable: {reason}")]
    Corrupt { series: i64, tier: i64, min_ts: i64, reason: String },
    #[error("{0}")]
    Limit(String),
}

/// Tier resolutions in milliseconds: raw, 1 minute, 1 hour.
pub const TIERS: [i64; 3] = [0, 60_000, 3_600_000];
/// Samples per chunk before it is sealed, per tier. The raw tier's bound is also what a series' head may
/// hold in memory, so it is Prometheus's 120 (30 minutes at 15 s): at 480 the heads of a collector's 86,000
/// series would grow to some 100 MiB (at ~2.5 bytes a sample), to save a few tenths of a byte a sample on disk.
const CHUNK_SAMPLES: [usize; 3] = [120, 480, 480];
/// Most head rows one statement inserts (a power of two; see [`head_insert_sql`]).
const HEAD_INSERT_MAX: usize = 256;

/// `INSERT OR REPLACE` of `n` raw head rows (`n` a power of two up to [`HEAD_INSERT_MAX`]), built once.
fn head_insert_sql(n: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 9] = [const { std::sync::OnceLock::new() }; 9];
    debug_assert!(n.is_power_of_two() && n <= HEAD_INSERT_MAX);
    SQL[n.ilog2() as usize].get_or_init(|| {
        let rows = vec!["(?, 0, ?, ?)"; n].join(", ");
        format!("INSERT OR REPLACE INTO head (series_id, tier, ts, bits) VALUES {rows}")
    })
}

/// A head whose first sample is older than this is sealed even when short (idle or slow series).
const HEAD_SPAN_MS: [i64; 3] = [2 * 3_600_000, 24 * 3_600_000, 30 * 24 * 3_600_000];

#[derive(Debug, Clone)]
pub struct TsdbConfig {
    /// How long each tier is kept: raw, 1-minute, 1-hour.
    pub retention: [Duration; 3],
    /// Bytes of live pages the file may hold; the oldest data goes first when it is exceeded.
    pub disk_budget_bytes: u64,
    /// The most samples one query may read (a bound against a query over a huge range).
    pub max_query_samples: usize,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        Self {
            retention: [Duration::from_secs(15 * 86_400), Duration::from_secs(90 * 86_400), Duration::from_secs(2 * 365 * 86_400)],
            disk_budget_bytes: 10 << 30,
            max_query_samples: 50_000_000,
        }
    }
}

/// One sample to write.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Labels,
    pub ts: i64,
    pub value: f64,
}

/// A series and its samples in a queried range.
#[derive(Debug, Clone)]
pub struct SeriesData {
    pub labels: Arc<Labels>,
    pub samples: Vec<(i64, f64)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub accepted: usize,
    /// Samples at or before their series' newest timestamp (Prometheus rejects these too).
    pub out_of_order: usize,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Usage {
    pub series: usize,
    pub chunks: i64,
    pub chunk_samples: i64,
    pub head_samples: usize,
    /// Live bytes of the file (pages in use × page size).
    pub bytes: u64,
}

pub struct Tsdb {
    pool: SqlitePool,
    index: Mutex<Index>,
    cfg: TsdbConfig,
}

impl Tsdb {
    /// Opens (or creates) the store at `path` and loads its series and heads.
    pub async fn open(path: &Path, cfg: TsdbConfig) -> Result<Self, TsdbError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
            // Chunks are rows of a few hundred bytes to a few kilobytes: large pages waste less at their ends.
            .page_size(16384)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, labels TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS head (series_id INTEGER NOT NULL, tier INTEGER NOT NULL, ts INTEGER NOT NULL, \
             bits INTEGER NOT NULL, PRIMARY KEY (series_id, tier, ts)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS chunks (series_id INTEGER NOT NULL, tier INTEGER NOT NULL, min_ts INTEGER NOT NULL, \
             max_ts INTEGER NOT NULL, count INTEGER NOT NULL, data BLOB NOT NULL, enc INTEGER NOT NULL DEFAULT 0, \
             PRIMARY KEY (series_id, tier, min_ts))",
            "CREATE INDEX IF NOT EXISTS chunks_by_age ON chunks (tier, max_ts)",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        // A store from before the decimal encoding: its chunks are all Gorilla's (`enc` 0).
        let has_enc: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('chunks') WHERE name = 'enc'").fetch_one(&pool).await?;
        if has_enc == 0 {
            sqlx::query("ALTER TABLE chunks ADD COLUMN enc INTEGER NOT NULL DEFAULT 0").execute(&pool).await?;
        }
        let mut index = Index::default();
        for row in sqlx::query("SELECT id, labels FROM series").fetch_all(&pool).await? {
            let id: i64 = row.get(0);
            let pairs: Vec<(String, String)> = serde_json::from_str(row.get::<&str, _>(1)).map_err(|e| TsdbError::Corrupt {
                series: id,
                tier: -1,
                min_ts: 0,
                reason: format!("label set: {e}"),
            })?;
            // The store assigns ids from 0 upwards; the index slots series by id.
            if id < 0 {
                return Err(TsdbError::Corrupt { series: id, tier: -1, min_ts: 0, reason: "a negative series id".into() });
            }
            index.insert(id, &Labels::new(pairs));
        }
        for row in sqlx::query("SELECT series_id, tier, ts, bits FROM head ORDER BY series_id, tier, ts").fetch_all(&pool).await? {
            let (id, tier, ts, bits): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            // Only the raw tier has a head (rows of other tiers are from an older layout; retention clears them).
            if tier == 0
                && let Some(s) = index.get_mut(id)
            {
                s.head.push(ts, f64::from_bits(bits as u64));
                s.last_ts = s.last_ts.max(ts);
                s.last_value = Some(f64::from_bits(bits as u64));
            }
        }
        for row in sqlx::query("SELECT series_id, MAX(max_ts) FROM chunks WHERE tier = 0 GROUP BY series_id").fetch_all(&pool).await? {
            let (id, ts): (i64, i64) = (row.get(0), row.get(1));
            if let Some(s) = index.get_mut(id) {
                s.last_ts = s.last_ts.max(ts);
            }
        }
        Ok(Self { pool, index: Mutex::new(index), cfg })
    }

    pub fn config(&self) -> &TsdbConfig {
        &self.cfg
    }

    /// Writes samples; returns once they are durable. Samples need not be grouped or sorted, but within a
    /// series each must be newer than the last one stored (older ones are counted and dropped).
    pub async fn append(&self, samples: &[Sample]) -> Result<AppendOutcome, TsdbError> {
        let mut sorted: Vec<&Sample> = samples.iter().filter(|s| !s.labels.is_empty()).collect();
        sorted.sort_by_key(|s| s.ts);
        let mut index = self.index.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut out = AppendOutcome::default();
        let mut new_series: Vec<(i64, Labels)> = Vec::new();
        let mut rows: Vec<(i64, usize, i64, f64)> = Vec::with_capacity(sorted.len() * 2);
        // Decide in a scratch copy of the last timestamps, so a failed transaction leaves memory untouched.
        let mut last: foldhash::HashMap<i64, i64> = foldhash::HashMap::default();
        let mut pending_keys: foldhash::HashMap<&Labels, i64> = foldhash::HashMap::default();
        let mut scratch = Vec::new();
        for s in sorted {
            let id = match index.lookup(&s.labels, &mut scratch).or_else(|| pending_keys.get(&s.labels).copied()) {
                Some(id) => id,
                None => {
                    let id = index.next_id + new_series.len() as i64;
                    pending_keys.insert(&s.labels, id);
                    new_series.push((id, s.labels.clone()));
                    id
                }
            };
            let prev = *last.entry(id).or_insert_with(|| index.get(id).map_or(i64::MIN, |st| st.last_ts));
            if s.ts <= prev {
                out.out_of_order += 1;
                continue;
            }
            rows.push((id, 0, s.ts, s.value));
            last.insert(id, s.ts);
            out.accepted += 1;
        }
        for (id, labels) in &new_series {
            let pairs: Vec<(&str, &str)> = labels.iter().collect();
            sqlx::query("INSERT INTO series (id, key, labels) VALUES (?, ?, ?)")
                .bind(id)
                .bind(labels.key())
                .bind(serde_json::to_string(&pairs).expect("strings serialise"))
                .execute(&mut *tx)
                .await?;
        }
        // Multi-row statements of power-of-two sizes: at most nine statements in a connection's cache (one per
        // batch size was some 50 KB each), and no JSON to parse (a `json_each` array cost 4 % of a collector's
        // CPU, perf).
        let mut rest = rows.as_slice();
        while !rest.is_empty() {
            let n = HEAD_INSERT_MAX.min(1 << rest.len().ilog2());
            let (batch, tail) = rest.split_at(n);
            let mut q = sqlx::query(head_insert_sql(n));
            for (id, _, ts, v) in batch {
                q = q.bind(id).bind(ts).bind(v.to_bits() as i64);
            }
            q.execute(&mut *tx).await?;
            rest = tail;
        }
        // Apply to a copy of the touched heads, seal the full ones in the same transaction, then commit
        // and only then publish to memory.
        // Per touched series, what this append adds to its raw head: the stored head is only read (and
        // copied) when a chunk is sealed, not on every append. Memory changes after the commit.
        struct Staged {
            /// The stored head went into a chunk in this transaction.
            sealed_stored: bool,
            added: Vec<(i64, f64)>,
        }
        let mut touched: foldhash::HashMap<i64, Staged> = foldhash::HashMap::default();
        for (id, tier, ts, v) in &rows {
            debug_assert_eq!(*tier, 0, "appends write raw samples only");
            let stored = index.get(*id).map(|s| &s.head);
            let st = touched.entry(*id).or_insert(Staged { sealed_stored: false, added: Vec::new() });
            let base = if st.sealed_stored { None } else { stored };
            let len = base.map_or(0, |h| h.len()) + st.added.len();
            let first = base.and_then(|h| h.first_ts()).or(st.added.first().map(|(t, _)| *t));
            // A chunk holds at most CHUNK_SAMPLES samples and spans at most HEAD_SPAN_MS, so retention
            // moves whole chunks close to their due time.
            if len >= CHUNK_SAMPLES[0] || first.is_some_and(|t0| ts - t0 >= HEAD_SPAN_MS[0]) {
                let mut chunk: Vec<(i64, f64)> = base.map(|h| h.samples()).unwrap_or_default();
                chunk.append(&mut st.added);
                seal(&mut tx, *id, 0, &mut chunk).await?;
                st.sealed_stored = true;
            }
            st.added.push((*ts, *v));
        }
        tx.commit().await?;
        for (id, labels) in new_series {
            index.insert(id, &labels);
        }
        // Rows are in time order, so the last one of a series is its newest.
        let newest: foldhash::HashMap<i64, f64> = rows.iter().filter(|r| r.1 == 0).map(|r| (r.0, r.3)).collect();
        for (id, st) in touched {
            if let Some(s) = index.get_mut(id) {
                if st.sealed_stored {
                    s.head = gorilla::Appender::default();
                }
                for (t, v) in st.added {
                    s.head.push(t, v);
                }
                s.last_ts = last[&id];
                if let Some(v) = newest.get(&id) {
                    s.last_value = Some(*v);
                }
            }
        }
        Ok(out)
    }

    /// Samples of every series the matchers select, in `[min_ts, max_ts]`, oldest first; where raw history
    /// has aged out, the 1-minute and then 1-hour rollups fill in. Bounded by `max_query_samples`.
    pub async fn select(&self, matchers: &[Matcher], min_ts: i64, max_ts: i64) -> Result<Vec<SeriesData>, TsdbError> {
        let (ids, mut heads) = {
            let index = self.index.lock().await;
            let ids = index.select(matchers);
            let heads: HashMap<i64, SeriesData> = ids
                .iter()
                .map(|id| {
                    let s = index.get(*id).expect("selected from the index");
                    // Decoded only when the range reaches it.
                    let overlaps = s.head.first_ts().is_some_and(|first| first <= max_ts && s.last_ts >= min_ts);
                    let head = if overlaps { s.head.samples().into_iter().filter(|(t, _)| *t >= min_ts && *t <= max_ts).collect() } else { Vec::new() };
                    (*id, SeriesData { labels: index.labels(s), samples: head })
                })
                .collect();
            (ids, heads)
        };
        // Every tier: the disk budget may have moved recent history down too.
        let tiers: &[i64] = &[0, 1, 2];
        let mut from_chunks: HashMap<(i64, i64), Vec<(i64, f64)>> = HashMap::new();
        let mut budget = self.cfg.max_query_samples;
        for batch in ids.chunks(500) {
            // The ids as one JSON array: one prepared statement for any number of them.
            let list = format!("[{}]", batch.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
            let rows = sqlx::query(
                "SELECT series_id, tier, min_ts, count, data, enc FROM chunks \
                 WHERE series_id IN (SELECT value FROM json_each(?)) AND max_ts >= ? AND min_ts <= ? \
                 ORDER BY series_id, tier, min_ts",
            )
            .bind(list)
            .bind(min_ts)
            .bind(max_ts)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let (id, tier, chunk_min, count): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
                budget = budget.checked_sub(count as usize).ok_or_else(|| {
                    TsdbError::Limit(format!("the query would read more than {} samples; narrow its range or series", self.cfg.max_query_samples))
                })?;
                let data: &[u8] = row.get(4);
                let samples =
                    chunk::decode(row.get(5), data, count as usize).map_err(|reason| TsdbError::Corrupt { series: id, tier, min_ts: chunk_min, reason })?;
                from_chunks.entry((id, tier)).or_default().extend(samples.into_iter().filter(|(t, _)| *t >= min_ts && *t <= max_ts));
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let SeriesData { labels, samples: mut head } = heads.remove(&id).expect("collected above");
            let mut stitched: Vec<(i64, f64)> = Vec::new();
            for &tier in tiers {
                let mut tier_samples = from_chunks.remove(&(id, tier)).unwrap_or_default();
                if tier == 0 {
                    tier_samples.append(&mut head);
                }
                // A coarser tier only fills the time before the finer one's first sample.
                let floor = stitched.first().map_or(i64::MAX, |s| s.0);
                tier_samples.retain(|(t, _)| *t < floor);
                tier_samples.extend(stitched);
                stitched = tier_samples;
            }
            if !stitched.is_empty() {
                out.push(SeriesData { labels, samples: stitched });
            }
        }
        Ok(out)
    }

    /// Label sets of the series the matcher sets select (any of them), that have a sample at or after `since`.
    pub async fn series(&self, matcher_sets: &[Vec<Matcher>], since: i64) -> Vec<Arc<Labels>> {
        let index = self.index.lock().await;
        let mut ids = BTreeSet::new();
        for set in matcher_sets {
            ids.extend(index.select(set));
        }
        ids.into_iter().filter_map(|id| index.get(id)).filter(|s| s.last_ts >= since).map(|s| index.labels(s)).collect()
    }

    /// The newest sample of every series written at or after `since` (what `/metrics` exposes).
    pub async fn latest(&self, since: i64) -> Vec<(Arc<Labels>, i64, f64)> {
        let index = self.index.lock().await;
        let mut out: Vec<(Arc<Labels>, i64, f64)> =
            index.iter().filter(|(_, s)| s.last_ts >= since).filter_map(|(_, s)| s.last_value.map(|v| (index.labels(s), s.last_ts, v))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every label name (sorted), or the values of one label name.
    pub async fn label_names(&self) -> Vec<String> {
        let index = self.index.lock().await;
        let names: BTreeSet<&str> = index.label_names().collect();
        names.into_iter().map(str::to_string).collect()
    }

    pub async fn label_values(&self, name: &str) -> Vec<String> {
        let index = self.index.lock().await;
        let values: BTreeSet<&str> = index.label_values(name).collect();
        values.into_iter().map(str::to_string).collect()
    }

    /// Housekeeping, run every minute: seal heads that have waited too long; move chunks past their tier's
    /// retention down a tier (raw → one sample a minute → one sample an hour; past the last tier they go);
    /// keep the file under the disk budget the same way, oldest first. Returns the chunks moved or dropped.
    pub async fn maintain(&self, now_ms: i64) -> Result<u64, TsdbError> {
        self.seal_where(|head| head.first_ts().is_some_and(|t| now_ms - t >= HEAD_SPAN_MS[0])).await?;
        let mut moved = 0;
        for (tier, keep) in self.cfg.retention.iter().enumerate() {
            let floor = now_ms - keep.as_millis() as i64;
            loop {
                let n = self.age_out(tier as i64, Some(floor), 500).await?;
                moved += n;
                if n < 500 {
                    break;
                }
            }
            sqlx::query("DELETE FROM head WHERE tier = ? AND ts < ?").bind(tier as i64).bind(floor).execute(&self.pool).await?;
            if tier == 0 {
                // A raw retention shorter than a head's span: the head's too-old samples go too.
                let mut index = self.index.lock().await;
                for (_, s) in index.iter_mut() {
                    if s.head.first_ts().is_some_and(|t| t < floor) {
                        let mut kept = gorilla::Appender::default();
                        for (t, v) in s.head.samples().into_iter().filter(|(t, _)| *t >= floor) {
                            kept.push(t, v);
                        }
                        s.head = kept;
                    }
                }
            }
        }
        let mut guard = 0;
        while self.usage_bytes().await? > self.cfg.disk_budget_bytes && guard < 10_000 {
            guard += 1;
            let mut n = 0;
            for tier in 0..3i64 {
                n = self.age_out(tier, None, 100).await?;
                if n > 0 {
                    break;
                }
            }
            moved += n;
            sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await?;
            if n == 0 {
                tracing::warn!(budget = self.cfg.disk_budget_bytes, "the time-series store is over its disk budget with no chunk left to drop");
                break;
            }
        }
        if moved > 0 {
            sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await?;
        }
        Ok(moved)
    }

    /// Takes up to `limit` of a tier's oldest chunks (those ending before `before`, when given) out of it:
    /// each is thinned to the next tier's resolution (the first sample of each minute or hour) and written
    /// there, in the same transaction; chunks of the last tier are dropped. Returns how many were taken.
    async fn age_out(&self, tier: i64, before: Option<i64>, limit: i64) -> Result<u64, TsdbError> {
        let rows = sqlx::query("SELECT rowid, series_id, min_ts, count, data, enc FROM chunks WHERE tier = ? AND max_ts < ? ORDER BY max_ts LIMIT ?")
            .bind(tier)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        for row in &rows {
            let (rowid, id, min_ts, count): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            if let Some(&res) = TIERS.get(tier as usize + 1) {
                // A chunk that does not decode is dropped rather than blocking retention for ever.
                match chunk::decode(row.get(5), row.get::<&[u8], _>(4), count as usize) {
                    Ok(samples) => {
                        // Continue from what the next tier already holds of this series: one sample a bucket,
                        // also across a chunk boundary.
                        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(max_ts) FROM chunks WHERE series_id = ? AND tier = ?")
                            .bind(id)
                            .bind(tier + 1)
                            .fetch_one(&mut *tx)
                            .await?;
                        let mut thinned: Vec<(i64, f64)> = Vec::new();
                        let mut last_bucket = last.map(|t| t.div_euclid(res));
                        for (t, v) in samples {
                            if last_bucket == Some(t.div_euclid(res)) {
                                continue;
                            }
                            last_bucket = Some(t.div_euclid(res));
                            thinned.push((t, v));
                        }
                        seal(&mut tx, id, tier as usize + 1, &mut thinned).await?;
                    }
                    Err(e) => tracing::error!(series = id, tier, min_ts, error = %e, "dropping a chunk that does not decode"),
                }
            }
            sqlx::query("DELETE FROM chunks WHERE rowid = ?").bind(rowid).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Seals every head now (a clean shutdown, or before measuring bytes per sample).
    pub async fn seal_all(&self) -> Result<(), TsdbError> {
        self.seal_where(|head| !head.is_empty()).await
    }

    /// Seals the raw heads `pick` chooses into chunks, in one transaction; memory changes after the commit.
    async fn seal_where(&self, pick: impl Fn(&gorilla::Appender) -> bool) -> Result<(), TsdbError> {
        let mut index = self.index.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut sealed: Vec<i64> = Vec::new();
        for (id, s) in index.iter() {
            if pick(&s.head) {
                let mut head = s.head.samples();
                seal(&mut tx, id, 0, &mut head).await?;
                sealed.push(id);
            }
        }
        tx.commit().await?;
        for id in sealed {
            if let Some(s) = index.get_mut(id) {
                s.head = gorilla::Appender::default();
            }
        }
        Ok(())
    }

    async fn usage_bytes(&self) -> Result<u64, TsdbError> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&self.pool).await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(&self.pool).await?;
        let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&self.pool).await?;
        Ok(((pages - free).max(0) * size) as u64)
    }

    pub async fn usage(&self) -> Result<Usage, TsdbError> {
        let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(count), 0) FROM chunks").fetch_one(&self.pool).await?;
        let index = self.index.lock().await;
        Ok(Usage {
            series: index.len(),
            chunks: row.get(0),
            chunk_samples: row.get(1),
            head_samples: index.iter().map(|(_, s)| s.head.len()).sum(),
            bytes: self.usage_bytes().await?,
        })
    }

    /// Bytes of chunk data in one tier (0 raw, 1 one-minute, 2 one-hour).
    pub async fn tier_bytes(&self, tier: i64) -> Result<i64, TsdbError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM chunks WHERE tier = ?").bind(tier).fetch_one(&self.pool).await?)
    }

    /// Gives free pages back to the file system and checkpoints the write-ahead log into the main file, so
    /// the file's size is its live pages (before measuring it). A running store keeps its free pages: the
    /// head rows of the next samples reuse them.
    pub async fn checkpoint(&self) -> Result<(), TsdbError> {
        sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Writes `head` as one chunk and removes its rows from the head table; empties `head`.
async fn seal(tx: &mut Transaction<'_, Sqlite>, id: i64, tier: usize, head: &mut Vec<(i64, f64)>) -> Result<(), TsdbError> {
    let (Some(first), Some(last)) = (head.first().copied(), head.last().copied()) else { return Ok(()) };
    let (encoding, data) = chunk::encode(head);
    sqlx::query("INSERT OR REPLACE INTO chunks (series_id, tier, min_ts, max_ts, count, data, enc) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(id)
        .bind(tier as i64)
        .bind(first.0)
        .bind(last.0)
        .bind(head.len() as i64)
        .bind(data)
        .bind(encoding)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM head WHERE series_id = ? AND tier = ? AND ts <= ?").bind(id).bind(tier as i64).bind(last.0).execute(&mut **tx).await?;
    head.clear();
    Ok(())
}

pub fn sluice_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A `__name__` equality matcher (handy for callers building selectors in code).
pub fn name_is(name: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, METRIC_NAME, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn sample(name: &str, inst: &str, ts: i64, v: f64) -> Sample {
        Sample { labels: Labels::metric(name, &[("instance", inst)]), ts, value: v }
    }

    #[tokio::test]
    async fn acknowledged_samples_survive_reopening_without_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsdb.sqlite");
        let t0 = sluice_now_ms() - 60_000;
        {
            let db = Tsdb::open(&path, TsdbConfig::default()).await.unwrap();
            // 500 samples: a sealed chunk plus a head, for two series.
            for i in 0..500 {
                let out = db.append(&[sample("m", "a", t0 + i * 100, i as f64), sample("m", "b", t0 + i * 100, -(i as f64))]).await.unwrap();
                assert_eq!(out.accepted, 2);
            }
            let out = db.append(&[sample("m", "a", t0, 1.0)]).await.unwrap();
            assert_eq!(out, AppendOutcome { accepted: 0, out_of_order: 1 });
            // Dropped without closing: what a killed process leaves.
        }
        let db = Tsdb::open(&path, TsdbConfig::default()).await.unwrap();
        let got = db.select(&[name_is("m")], t0, t0 + 500 * 100).await.unwrap();
        assert_eq!(got.len(), 2);
        for s in &got {
            assert_eq!(s.samples.len(), 500, "{}", s.labels);
            let sign = if s.labels.get("instance") == Some("a") { 1.0 } else { -1.0 };
            assert!(s.samples.iter().enumerate().all(|(i, (t, v))| *t == t0 + i as i64 * 100 && *v == sign * i as f64));
        }
        let usage = db.usage().await.unwrap();
        assert_eq!(usage.series, 2);
        assert!(usage.chunks >= 2 && usage.head_samples > 0, "{usage:?}");
        // Still ordered after the restart: an old timestamp is refused, a new one taken.
        let out = db.append(&[sample("m", "a", t0 + 10, 0.0), sample("m", "a", t0 + 600 * 100, 0.0)]).await.unwrap();
        assert_eq!(out, AppendOutcome { accepted: 1, out_of_order: 1 });
    }

    #[tokio::test]
    async fn a_file_with_a_negative_series_id_is_refused_as_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsdb.sqlite");
        Tsdb::open(&path, TsdbConfig::default()).await.unwrap().close().await;
        let raw = SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query("INSERT INTO series (id, key, labels) VALUES (-3, 'up{}', '[[\"__name__\",\"up\"]]')").execute(&raw).await.unwrap();
        raw.close().await;
        let err = Tsdb::open(&path, TsdbConfig::default()).await.err().expect("refused");
        assert!(err.to_string().contains("series -3") && err.to_string().contains("negative"), "{err}");
    }

    #[tokio::test]
    async fn decimal_chunks_are_chosen_when_smaller_and_older_gorilla_only_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsdb.sqlite");
        let t0 = sluice_now_ms() - 3_600_000;
        let n = CHUNK_SAMPLES[0] as i64;
        let counter: Vec<(i64, f64)> = (0..n).map(|i| (t0 + i * 1000, (1000 + i * i) as f64)).collect();
        let noise: Vec<(i64, f64)> = (0..n).map(|i| (t0 + i * 1000, ((i * 7919) % 1000) as f64 / 7.0)).collect();
        {
            let db = Tsdb::open(&path, TsdbConfig::default()).await.unwrap();
            let batch: Vec<Sample> = counter.iter().zip(&noise).flat_map(|(c, n)| [sample("c", "a", c.0, c.1), sample("n", "a", n.0, n.1)]).collect();
            db.append(&batch).await.unwrap();
            db.seal_all().await.unwrap();
            db.close().await;
        }
        // The counter's chunk is decimal, the noise (sevenths) Gorilla's; then the file is made to look like
        // one written before the `enc` column existed: every chunk Gorilla's.
        let raw = SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let encodings: Vec<(i64, i64)> = sqlx::query_as("SELECT count, enc FROM chunks ORDER BY enc").fetch_all(&raw).await.unwrap();
        assert_eq!(encodings, vec![(n, chunk::GORILLA), (n, chunk::DECIMAL)]);
        sqlx::query("UPDATE chunks SET data = ? WHERE enc = 1").bind(gorilla::encode(&counter)).execute(&raw).await.unwrap();
        sqlx::query("ALTER TABLE chunks DROP COLUMN enc").execute(&raw).await.unwrap();
        raw.close().await;
        let db = Tsdb::open(&path, TsdbConfig::default()).await.unwrap();
        let later: Vec<(i64, f64)> = (n..2 * n).map(|i| (t0 + i * 1000, (1000 + i * i) as f64)).collect();
        db.append(&later.iter().map(|&(t, v)| sample("c", "a", t, v)).collect::<Vec<_>>()).await.unwrap();
        db.seal_all().await.unwrap();
        let got = db.select(&[name_is("c")], t0, t0 + 2 * n * 1000).await.unwrap();
        let expected: Vec<(i64, f64)> = counter.iter().chain(&later).copied().collect();
        assert_eq!(got[0].samples, expected, "the old Gorilla chunk and the new decimal one, stitched");
        let got = db.select(&[name_is("n")], t0, t0 + 2 * n * 1000).await.unwrap();
        assert_eq!(got[0].samples, noise);
    }

    #[tokio::test]
    async fn rollups_answer_where_raw_history_has_aged_out() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            TsdbConfig { retention: [Duration::from_secs(3600), Duration::from_secs(86_400 * 30), Duration::from_secs(86_400 * 365)], ..Default::default() };
        let db = Tsdb::open(&dir.path().join("t.sqlite"), cfg).await.unwrap();
        let now = sluice_now_ms();
        let t0 = now - 3 * 3_600_000;
        // A sample every 10 s for three hours.
        let batch: Vec<Sample> = (0..1080).map(|i| sample("g", "x", t0 + i * 10_000, i as f64)).collect();
        db.append(&batch).await.unwrap();
        db.seal_all().await.unwrap();
        let moved = db.maintain(now).await.unwrap();
        assert!(moved > 0, "raw chunks older than an hour move down a tier");
        let got = db.select(&[name_is("g")], t0, now).await.unwrap();
        let s = &got[0].samples;
        // Before the raw floor: one sample a minute (the first of each minute); after it: every 10 s.
        let floor = now - 3_600_000;
        // A raw chunk spans at most CHUNK_SAMPLES[0] samples (20 min here) and 2 hours, so raw history may
        // reach that far before the floor (85 min leaves room for longer chunks too).
        let old: Vec<&(i64, f64)> = s.iter().filter(|(t, _)| *t < floor - 85 * 60_000).collect();
        assert!(!old.is_empty());
        // One sample per minute bucket, every minute.
        let buckets: Vec<i64> = old.iter().map(|(t, _)| t.div_euclid(60_000)).collect();
        assert!(buckets.windows(2).all(|w| w[1] == w[0] + 1), "minute rollups before the floor: {buckets:?}");
        assert!(s.windows(2).all(|w| w[1].0 > w[0].0), "stitched in order without overlap");
        let recent = s.iter().filter(|(t, _)| *t > now - 1_800_000).count();
        assert!(recent >= 170, "raw samples in the last half hour: {recent}");
    }

    #[tokio::test]
    async fn the_disk_budget_drops_the_oldest_data_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(&dir.path().join("t.sqlite"), TsdbConfig { disk_budget_bytes: 1_200_000, ..Default::default() }).await.unwrap();
        let now = sluice_now_ms();
        let t0 = now - 86_400_000;
        for chunk in 0..20 {
            let batch: Vec<Sample> = (0..50)
                .flat_map(|s| {
                    (0..240).map(move |i| sample("noise", &format!("s{s}"), t0 + (chunk * 240 + i) * 15_000, ((i * 7919 + s * 31) % 1000) as f64 * 1.37))
                })
                .collect();
            db.append(&batch).await.unwrap();
        }
        let before = db.usage().await.unwrap();
        assert!(before.bytes > 2_000_000, "{before:?}");
        db.maintain(now).await.unwrap();
        let after = db.usage().await.unwrap();
        assert!(after.bytes <= 1_200_000, "{after:?}");
        let got = db.select(&[name_is("noise")], t0, now).await.unwrap();
        let newest = got.iter().map(|s| s.samples.last().unwrap().0).max().unwrap();
        assert_eq!(newest, t0 + (20 * 240 - 1) * 15_000, "the newest samples are kept");
        // The oldest history went down to one sample a minute (or an hour); the newest is still raw.
        let s = &got[0].samples;
        assert!(s.windows(2).take(10).all(|w| w[1].0.div_euclid(60_000) > w[0].0.div_euclid(60_000)), "one a minute: {:?}", &s[..10]);
        assert!(s.windows(2).rev().take(10).all(|w| w[1].0 - w[0].0 == 15_000), "raw at the end");
    }
}
