//! The database sink: fits each source table to its target table, then writes every batch and the sink's
//! checkpoint in one target transaction.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sluice_core::component::Record;
use sluice_core::{ChangeEvent, Operation, Value};
use sluice_engines::ConnectSpec;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError, StreamCursor};

use super::apply::{Planned, Statements, runs, write_run};
use super::config::{DatabaseSinkConfig, NewColumn, Truncate};
use super::convert::Dialect;
use super::mapping::{Mapping, Misfit, Op, TablePlan, ops};
use super::target::{CheckpointStatements, DbError, TableName, Target, TargetTable, created_type, ident};
use crate::component::SinkContext;

pub struct DatabaseSink {
    spec: ConnectSpec,
    /// The MySQL/MariaDB source, whose silent foreign-key actions are checked at open.
    source: Option<ConnectSpec>,
    pipeline: String,
    name: String,
    mappings: Vec<Arc<Mapping>>,
    checkpoint_table: String,
    statement_rows: usize,
    on_new_column: NewColumn,
    truncate: Truncate,
    target: Option<Target>,
    statements: Statements,
    checkpoint_statements: CheckpointStatements,
    /// Target tables as last described.
    described: HashMap<TableName, Arc<TargetTable>>,
    /// Per source table: its fitted plan, `None` when no mapping takes it.
    plans: HashMap<SourceTable, Option<Arc<TablePlan>>>,
}

/// A source table: (database or schema, table).
type SourceTable = (Arc<str>, Arc<str>);

/// `Err` for a batch: the sink retries it (the target is down, or needs a person: a missing table or column).
fn retry(doing: &str, e: DbError) -> SinkError {
    e.into_sink(doing)
}

impl DatabaseSink {
    pub fn new(config: DatabaseSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let mut spec = config.connect_spec().map_err(|e| format!("`url`: {e}"))?.with_timeout(std::time::Duration::from_secs(10));
        if let Some(policy) = &cx.scope.egress {
            spec = spec.with_egress(policy.clone());
        }
        let mappings = config.tables.into_iter().map(|t| Mapping::compile(t).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        let source = config.source.map(|s| s.with_timeout(std::time::Duration::from_secs(10)));
        let source = match (&cx.scope.egress, source) {
            (Some(policy), Some(s)) => Some(s.with_egress(policy.clone())),
            (_, s) => s,
        };
        Ok(Self {
            spec,
            source,
            pipeline: cx.pipeline.to_string(),
            name: cx.name.to_string(),
            mappings,
            checkpoint_table: config.checkpoint_table,
            statement_rows: config.statement_rows.get(),
            on_new_column: config.on_new_column,
            truncate: config.truncate,
            target: None,
            statements: Statements::default(),
            checkpoint_statements: CheckpointStatements::default(),
            described: HashMap::new(),
            plans: HashMap::new(),
        })
    }

    fn dialect(&self) -> Dialect {
        if self.spec.engine == sluice_core::Engine::Postgres { Dialect::Postgres } else { Dialect::Mysql }
    }

    /// Where a bare table name lands: `public` on PostgreSQL, the connection's database on MySQL/MariaDB.
    fn default_schema(&self) -> Result<String, SinkError> {
        match self.dialect() {
            Dialect::Postgres => Ok("public".into()),
            Dialect::Mysql => self
                .spec
                .database
                .clone()
                .ok_or_else(|| SinkError::permanent("the target URL names no database: give one (`mysql://…/db`) or write every table as `database.table`")),
        }
    }

    fn checkpoint_name(&self) -> Result<TableName, SinkError> {
        Ok(match self.checkpoint_table.split_once('.') {
            Some((s, t)) => TableName { schema: s.into(), table: t.into() },
            None => TableName { schema: self.default_schema()?, table: self.checkpoint_table.clone() },
        })
    }

    async fn target(&mut self) -> Result<&mut Target, SinkError> {
        if self.target.is_none() {
            let mut t = Target::connect(&self.spec).await?;
            let table = self.checkpoint_name()?;
            t.ensure_checkpoint_table(&table).await.map_err(|e| retry(&format!("cannot create the checkpoint table {table}"), e))?;
            self.statements = Statements::default();
            self.checkpoint_statements = CheckpointStatements::default();
            self.target = Some(t);
        }
        Ok(self.target.as_mut().expect("connected above"))
    }

    async fn describe(&mut self, name: &TableName, fresh: bool) -> Result<Option<Arc<TargetTable>>, SinkError> {
        if !fresh && let Some(t) = self.described.get(name) {
            return Ok(Some(t.clone()));
        }
        let found = match self.target().await?.describe(name).await {
            Ok(found) => found,
            Err(e) => {
                if e.lost {
                    self.target = None;
                }
                return Err(retry(&format!("cannot read the columns of {name}"), e));
            }
        };
        Ok(match found {
            Some(t) => {
                let t = Arc::new(t);
                self.described.insert(name.clone(), t.clone());
                Some(t)
            }
            None => {
                self.described.remove(name);
                None
            }
        })
    }

    /// The plan for `ev`'s table, fitted to its current columns (creating or widening the target table as
    /// configured). `None` when no mapping takes the table.
    async fn plan(&mut self, ev: &ChangeEvent) -> Result<Option<Arc<TablePlan>>, SinkError> {
        let key = (ev.database.clone(), ev.table.clone());
        let image = ev.after.as_ref().or(ev.before.as_ref());
        if let Some(existing) = self.plans.get(&key) {
            match (existing, image) {
                (None, _) => return Ok(None),
                (Some(p), Some(row)) if p.fits(&row.columns) => return Ok(Some(p.clone())),
                (Some(p), None) => return Ok(Some(p.clone())),
                _ => {}
            }
        }
        let Some(mapping) = self.mappings.iter().find(|m| m.matches(&ev.database, &ev.table)).cloned() else {
            self.plans.insert(key, None);
            return Ok(None);
        };
        let name = mapping.target_name(&ev.database, &ev.table, &self.default_schema()?);
        let Some(sample) = image.cloned() else {
            // A TRUNCATE before any row of the table: a plan that only names the table.
            let target = self.describe(&name, false).await?.ok_or_else(|| missing_table(&name))?;
            return Ok(Some(Arc::new(TablePlan::whole_table(mapping, target))));
        };
        let mut target = match self.describe(&name, true).await? {
            Some(t) => t,
            None if mapping.entry.create => {
                self.create_table(&mapping, &name, ev, &sample).await?;
                self.describe(&name, true).await?.ok_or_else(|| missing_table(&name))?
            }
            None => return Err(missing_table(&name)),
        };
        for _ in 0..2 {
            match TablePlan::fit(mapping.clone(), target.clone(), &sample, self.on_new_column) {
                Ok(plan) => {
                    let plan = Arc::new(plan);
                    self.plans.insert(key, Some(plan.clone()));
                    return Ok(Some(plan));
                }
                Err(Misfit::Broken(reason)) => return Err(SinkError::retryable(format!("mapping of {}.{}: {reason}", ev.database, ev.table))),
                Err(Misfit::MissingColumns(cols)) if self.on_new_column == NewColumn::Add => {
                    let d = self.dialect();
                    for (_, column, value) in &cols {
                        let sql = format!("ALTER TABLE {} ADD COLUMN {} {}", name.quoted(d), ident(column, d), created_type(value, d, false));
                        self.target().await?.exec(&sql).await.map_err(|e| retry(&format!("cannot add column `{column}` to {name}"), e))?;
                        tracing::info!(sink = %self.name, table = %name, column = %column, "column added at the target");
                    }
                    target = self.describe(&name, true).await?.ok_or_else(|| missing_table(&name))?;
                }
                Err(Misfit::MissingColumns(cols)) => {
                    let list: Vec<String> = cols.iter().map(|(_, c, _)| format!("`{c}`")).collect();
                    return Err(SinkError::retryable(format!(
                        "{} has no column {} that {}.{} sends (on_new_column = \"stop\"): add it at the target, or set on_new_column to \"add\" or \"ignore\"",
                        name,
                        list.join(", "),
                        ev.database,
                        ev.table
                    )));
                }
            }
        }
        Err(SinkError::retryable(format!("{name} still lacks columns after adding them")))
    }

    /// Creates the target table from a source row: its mapped columns typed by their values, its computed
    /// columns typed by their first result, the source's primary key (or the mapping's `key`).
    async fn create_table(&mut self, mapping: &Mapping, name: &TableName, ev: &ChangeEvent, sample: &sluice_core::Row) -> Result<(), SinkError> {
        let d = self.dialect();
        let renamed = |c: &str| mapping.entry.rename.get(c).cloned().unwrap_or_else(|| c.to_string());
        let key: Vec<String> = match &mapping.entry.key {
            Some(k) => k.clone(),
            None => sample.columns.iter().filter(|c| c.primary_key).map(|c| renamed(&c.name)).collect(),
        };
        if key.is_empty() {
            return Err(SinkError::retryable(format!("cannot create {name}: {}.{} has no primary key; give `key` in the mapping", ev.database, ev.table)));
        }
        let mut columns = Vec::new();
        for (c, v) in sample.columns.iter().zip(&sample.values) {
            if mapping.entry.drop.iter().any(|x| x == &*c.name) || mapping.entry.set.contains_key(&renamed(&c.name)) {
                continue;
            }
            let n = renamed(&c.name);
            let is_key = key.contains(&n);
            columns.push(format!("{} {}{}", ident(&n, d), created_type(v, d, is_key), if is_key { " NOT NULL" } else { "" }));
        }
        for column in mapping.entry.set.keys() {
            columns.push(format!("{} {}", ident(column, d), created_type(&Value::String("".into()), d, key.contains(column))));
        }
        let keys: Vec<String> = key.iter().map(|k| ident(k, d)).collect();
        let sql = format!("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))", name.quoted(d), columns.join(", "), keys.join(", "));
        self.target().await?.exec(&sql).await.map_err(|e| retry(&format!("cannot create {name}"), e))?;
        tracing::info!(sink = %self.name, table = %name, "target table created");
        Ok(())
    }

    /// The batch in one transaction with the checkpoint; `careful` writes record by record, each in a
    /// savepoint, so that a record the target refuses is dead-lettered and the rest are written.
    /// `record_plans[i]` is the plan record `i`'s operations were made with (a later record of the same
    /// batch may have refitted the table, after a column was added: its operations have more cells).
    async fn write(
        &mut self,
        batch: &Batch,
        plans: &[Option<Vec<Op>>],
        record_plans: &[Option<Arc<TablePlan>>],
        refused: &[(usize, String)],
        careful: bool,
    ) -> Result<Vec<Rejected>, DbError> {
        let checkpoint = self.checkpoint_name().map_err(|e| DbError { message: e.message, data: false, lost: false })?;
        let (pipeline, sink_name) = (self.pipeline.clone(), self.name.clone());
        let max = self.statement_rows;
        let truncate_plans = self.truncate_plans(batch).await;
        let target = self.target.as_mut().ok_or_else(|| DbError { message: "not connected".into(), data: false, lost: true })?;
        let stored = target.begin_and_lock(&checkpoint, &pipeline, &sink_name, &mut self.checkpoint_statements).await?;
        let skip = match stored {
            None => 0,
            Some(text) => {
                let cursor: StreamCursor = serde_json::from_str(&text).map_err(|e| DbError {
                    message: format!("the checkpoint in {checkpoint} is not a stream position: {e}"),
                    data: false,
                    lost: false,
                })?;
                batch.applied(&cursor).map_err(|m| DbError { message: m, data: false, lost: false })?
            }
        };
        if skip > 0 {
            tracing::info!(sink = %sink_name, skipped = skip, "records the target already had are skipped");
        }
        if skip == batch.records.len() {
            target.exec("ROLLBACK").await?;
            return Ok(Vec::new());
        }
        let mut rejected: Vec<Rejected> =
            refused.iter().filter(|(i, _)| *i >= skip).map(|(i, reason)| Rejected { index: *i, reason: reason.clone() }).collect();
        let mut planned = Vec::new();
        for i in skip..batch.records.len() {
            let Some(list) = &plans[i] else { continue };
            let plan = match (&record_plans[i], truncate_plans.get(&i)) {
                (_, Some(p)) => p.clone(),
                (Some(p), None) => p.clone(),
                (None, None) => continue,
            };
            let fresh = matches!(&batch.records[i], Record::Change(ev) if matches!(ev.op, Operation::Insert | Operation::Snapshot));
            planned.extend(list.iter().map(|op| Planned { record: i, plan: plan.clone(), op: op.clone(), fresh: fresh && matches!(op, Op::Upsert(_)) }));
        }
        if careful {
            let mut i = 0;
            while i < planned.len() {
                let record = planned[i].record;
                let end = planned[i..].iter().position(|p| p.record != record).map_or(planned.len(), |n| i + n);
                target.exec("SAVEPOINT sluice_record").await?;
                let mut failed = None;
                for p in &planned[i..end] {
                    if let Err(e) = write_run(target, &mut self.statements, std::slice::from_ref(p)).await {
                        failed = Some(e);
                        break;
                    }
                }
                match failed {
                    None => target.exec("RELEASE SAVEPOINT sluice_record").await?,
                    Some(e) if e.data => {
                        target.exec("ROLLBACK TO SAVEPOINT sluice_record").await?;
                        rejected.push(Rejected { index: record, reason: format!("the target refused the row: {}", e.message) });
                    }
                    Some(e) => return Err(e),
                }
                i = end;
            }
        } else {
            for run in runs(&planned, max) {
                write_run(target, &mut self.statements, &planned[run]).await?;
            }
        }
        let end = serde_json::to_string(&batch.end()).expect("a cursor serializes");
        target.save_and_commit(&checkpoint, &pipeline, &sink_name, &end, &mut self.checkpoint_statements).await?;
        Ok(rejected)
    }

    /// Plans for the TRUNCATEs of the batch, by record index (tables of mapped sources only).
    async fn truncate_plans(&mut self, batch: &Batch) -> HashMap<usize, Arc<TablePlan>> {
        let mut out = HashMap::new();
        if self.truncate == Truncate::Ignore {
            return out;
        }
        for (i, r) in batch.records.iter().enumerate() {
            let Record::Change(ev) = r else { continue };
            let Some((db, table)) = truncated_table(ev) else { continue };
            let Some(mapping) = self.mappings.iter().find(|m| m.matches(&db, &table)).cloned() else { continue };
            let Ok(schema) = self.default_schema() else { continue };
            let name = mapping.target_name(&db, &table, &schema);
            if let Ok(Some(target)) = self.describe(&name, false).await {
                out.insert(i, Arc::new(TablePlan::whole_table(mapping, target)));
            }
        }
        out
    }
}

fn missing_table(name: &TableName) -> SinkError {
    SinkError::retryable(format!("target table {name} does not exist: create it, or set `create = true` in the mapping"))
}

/// The table a TRUNCATE names: PostgreSQL's change carries it; MySQL/MariaDB's is statement text
/// (`TRUNCATE [TABLE] [db.]name`, names in backquotes or bare).
pub(crate) fn truncated_table(ev: &ChangeEvent) -> Option<(String, String)> {
    if ev.op != Operation::Ddl {
        return None;
    }
    let stmt = ev.statement.as_deref()?.trim();
    let words: Vec<&str> = stmt.splitn(3, char::is_whitespace).collect();
    if !words.first()?.eq_ignore_ascii_case("truncate") {
        return None;
    }
    if !ev.table.is_empty() {
        return Some((ev.database.to_string(), ev.table.to_string()));
    }
    let rest = stmt[words[0].len()..].trim_start();
    let rest =
        if rest.len() > 5 && rest[..5].eq_ignore_ascii_case("table") && rest[5..].starts_with(char::is_whitespace) { rest[5..].trim_start() } else { rest };
    let name = rest.split(|c: char| c.is_whitespace() || c == ';').next()?;
    let parts: Vec<String> = split_qualified(name);
    match parts.as_slice() {
        [t] => Some((ev.database.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

fn split_qualified(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                chars.next();
                cur.push('`');
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

impl Sink for DatabaseSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.target().await?;
            if let Some(src) = self.source.clone() {
                let fks = super::cascade::source_foreign_keys(&src).await?;
                let schema = self.default_schema()?;
                let at = format!("sinks.{}", self.name);
                let mappings = self.mappings.clone();
                let t = self.target().await?;
                super::cascade::check(&at, &fks, &mappings, t, &schema).await?;
            }
            Ok(())
        })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            self.target().await?;
            // Fit every table first: creating or widening a table is DDL, which commits on MySQL/MariaDB, so it
            // happens before the batch's transaction opens.
            let dialect = self.dialect();
            let mut plans: Vec<Option<Vec<Op>>> = Vec::with_capacity(batch.records.len());
            let mut record_plans: Vec<Option<Arc<TablePlan>>> = Vec::with_capacity(batch.records.len());
            let mut refused = Vec::new();
            for (i, r) in batch.records.iter().enumerate() {
                match r {
                    Record::Metric(_) => {
                        refused.push((i, "the database sink writes row changes, not metrics".to_string()));
                        plans.push(None);
                        record_plans.push(None);
                    }
                    Record::Change(ev) if ev.op == Operation::Ddl => {
                        plans.push(truncated_table(ev).map(|_| vec![Op::Truncate]));
                        record_plans.push(None);
                    }
                    Record::Change(ev) => match self.plan(ev).await {
                        Ok(None) => {
                            plans.push(None);
                            record_plans.push(None);
                        }
                        Ok(Some(plan)) => match ops(&plan, ev, dialect) {
                            Ok(list) => {
                                plans.push(Some(list));
                                record_plans.push(Some(plan));
                            }
                            Err(reason) => {
                                refused.push((i, reason));
                                plans.push(None);
                                record_plans.push(None);
                            }
                        },
                        Err(e) => return Err(e),
                    },
                }
            }
            let result = match self.write(batch, &plans, &record_plans, &refused, false).await {
                Err(e) if e.data => {
                    // A row the target refused, somewhere in a multi-row statement: write the batch again record by
                    // record to find it (the failed transaction left nothing behind).
                    if let Some(t) = self.target.as_mut() {
                        let _ = t.exec("ROLLBACK").await;
                    }
                    self.write(batch, &plans, &record_plans, &refused, true).await
                }
                other => other,
            };
            match result {
                Ok(rejected) => Ok(rejected),
                Err(e) => {
                    if e.lost {
                        self.target = None;
                    } else if let Some(t) = self.target.as_mut()
                        && t.exec("ROLLBACK").await.is_err()
                    {
                        self.target = None;
                    }
                    Err(retry("cannot write the batch", e))
                }
            }
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(Target::My(c)) = self.target.take() {
                let _ = c.disconnect().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Origin, Position};

    use super::*;

    fn ddl(db: &str, table: &str, stmt: &str) -> ChangeEvent {
        let origin = Origin { commit_ts_ms: 0, txn: None, position: Position::Lsn { lsn: 0 } };
        ChangeEvent::ddl("s".into(), db.into(), table.into(), stmt.into(), origin)
    }

    #[test]
    fn truncates_name_their_table() {
        assert_eq!(truncated_table(&ddl("shop", "", "TRUNCATE TABLE `orders`")), Some(("shop".into(), "orders".into())));
        assert_eq!(truncated_table(&ddl("shop", "", "truncate other.`my``t`;")), Some(("other".into(), "my`t".into())));
        assert_eq!(truncated_table(&ddl("shop", "", "TRUNCATE orders")), Some(("shop".into(), "orders".into())));
        assert_eq!(truncated_table(&ddl("public", "items", "TRUNCATE public.items")), Some(("public".into(), "items".into())));
        assert_eq!(truncated_table(&ddl("shop", "", "ALTER TABLE t ADD c INT")), None);
        assert_eq!(truncated_table(&ddl("shop", "", "TRUNCATE TABLEX")), Some(("shop".into(), "TABLEX".into())));
    }
}
