//! Unchanged TOAST values filled from what this stream has already delivered.
//!
//! Under REPLICA IDENTITY DEFAULT, an UPDATE that leaves a TOASTed (out-of-line) column alone sends no value
//! for it and no old row. The value is then exactly the one the row's previous version held — and if this
//! stream delivered that previous version (the insert or the last update that set the column), it holds it.
//! So the source keeps recent large values per (relation, key, column) and fills unchanged cells from them;
//! only a row last written before the stream started (or whose value was evicted) still arrives with the
//! `unchanged` marker.
//!
//! Why this is exact: changes arrive in commit order, and each entry is the value of the newest delivered
//! version of its row. The cache lives for one replication session only: after a reconnect the stream
//! replays from the last checkpoint, and an entry learned from an event past that point would be newer than
//! the replayed rows, so the cache starts empty again. Deletes, key changes, TRUNCATE and a new Relation
//! message (columns may have moved) drop the entries they make stale. Memory is bounded by
//! [`BUDGET_BYTES`]; values are shared with the delivered events (`Arc`), not copied.

use std::collections::{HashMap, VecDeque};

use sluice_core::change::Row;
use sluice_core::{Operation, Value};

/// What the cached values may take, counted by their length.
pub(crate) const BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Values shorter than this are never stored out of line (a TOAST pointer is 18 bytes), so they are never
/// sent as unchanged and are not worth keeping.
const MIN_BYTES: usize = 32;

type Key = (u32, Vec<u8>, usize);

#[derive(Default)]
pub(crate) struct ToastCache {
    entries: HashMap<Key, (Value, u64)>,
    /// Insertion order with the generation each entry had, for eviction (stale pairs are skipped).
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    generation: u64,
}

fn size(v: &Value) -> usize {
    match v {
        Value::String(s) | Value::Decimal(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Json(j) => j.get().len(),
        _ => 0,
    }
}

/// The row's key (its replica-identity columns) as bytes, or `None` when it has no key columns or a key
/// value is missing.
fn key_of(row: &Row) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut any = false;
    for (c, v) in row.columns.iter().zip(&row.values) {
        if c.primary_key {
            if matches!(v, Value::Unchanged) {
                return None;
            }
            let text = format!("{v:?}");
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            any = true;
        }
    }
    any.then_some(out)
}

impl ToastCache {
    /// Fills unchanged cells of `after` from the cache, then learns its large values; forgets what a delete
    /// or a key change makes stale.
    pub fn apply(&mut self, relation: u32, op: Operation, before: Option<&Row>, after: Option<&mut Row>) {
        let old_key = before.and_then(key_of);
        match (op, after) {
            (Operation::Delete, _) => {
                if let (Some(k), Some(b)) = (old_key, before) {
                    self.forget_row(relation, &k, b.values.len());
                }
            }
            (_, Some(after)) => {
                let Some(key) = key_of(after) else { return };
                if let Some(old) = old_key.filter(|k| *k != key) {
                    // The key changed: the entries under the old key describe the same row; carry them over.
                    for col in 0..after.values.len() {
                        if let Some((v, _)) = self.entries.remove(&(relation, old.clone(), col)) {
                            self.bytes -= size(&v);
                            if matches!(after.values[col], Value::Unchanged) {
                                after.values[col] = v;
                            }
                        }
                    }
                }
                for (col, v) in after.values.iter_mut().enumerate() {
                    if matches!(v, Value::Unchanged)
                        && let Some((cached, _)) = self.entries.get(&(relation, key.clone(), col))
                    {
                        *v = cached.clone();
                    }
                }
                for (col, v) in after.values.iter().enumerate() {
                    if size(v) >= MIN_BYTES {
                        self.remember((relation, key.clone(), col), v.clone());
                    } else if !matches!(v, Value::Unchanged) {
                        // A small (or NULL) new value replaces a large one.
                        if let Some((old, _)) = self.entries.remove(&(relation, key.clone(), col)) {
                            self.bytes -= size(&old);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Drops every entry of a relation (TRUNCATE, or a new Relation message).
    pub fn forget_relation(&mut self, relation: u32) {
        let bytes = &mut self.bytes;
        self.entries.retain(|(r, _, _), (v, _)| {
            let keep = *r != relation;
            if !keep {
                *bytes -= size(v);
            }
            keep
        });
    }

    fn forget_row(&mut self, relation: u32, key: &[u8], columns: usize) {
        for col in 0..columns {
            if let Some((v, _)) = self.entries.remove(&(relation, key.to_vec(), col)) {
                self.bytes -= size(&v);
            }
        }
    }

    fn remember(&mut self, key: Key, v: Value) {
        let n = size(&v);
        if n > BUDGET_BYTES {
            return;
        }
        self.generation += 1;
        if let Some((old, _)) = self.entries.insert(key.clone(), (v, self.generation)) {
            self.bytes -= size(&old);
        }
        self.bytes += n;
        self.order.push_back((key, self.generation));
        while self.bytes > BUDGET_BYTES {
            let Some((k, g)) = self.order.pop_front() else { break };
            if self.entries.get(&k).is_some_and(|(_, eg)| *eg == g)
                && let Some((old, _)) = self.entries.remove(&k)
            {
                self.bytes -= size(&old);
            }
        }
        // Stale order entries pile up when the same cells are rewritten often: compact now and then.
        if self.order.len() > 4 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.order.retain(|(k, g)| entries.get(k).is_some_and(|(_, eg)| eg == g));
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::change::Column;

    use super::*;

    fn row(id: i64, big: Value) -> Row {
        let columns: Arc<[Column]> = vec![Column { name: "id".into(), primary_key: true }, Column { name: "big".into(), primary_key: false }].into();
        Row { columns, values: vec![Value::Int(id), big] }
    }

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn fills_from_the_last_delivered_version_and_forgets_what_goes_stale() {
        let a = "a".repeat(100);
        let b = "b".repeat(100);
        let mut c = ToastCache::default();
        c.apply(7, Operation::Insert, None, Some(&mut row(1, text(&a))));
        let mut upd = row(1, Value::Unchanged);
        c.apply(7, Operation::Update, None, Some(&mut upd));
        assert_eq!(upd.values[1], text(&a));
        c.apply(7, Operation::Update, None, Some(&mut row(1, text(&b))));
        let mut upd = row(1, Value::Unchanged);
        c.apply(7, Operation::Update, None, Some(&mut upd));
        assert_eq!(upd.values[1], text(&b), "the newest version wins");
        // A row never seen keeps the marker; so does one after a delete, or in another relation.
        let mut unseen = row(2, Value::Unchanged);
        c.apply(7, Operation::Update, None, Some(&mut unseen));
        assert_eq!(unseen.values[1], Value::Unchanged);
        let mut other = row(1, Value::Unchanged);
        c.apply(8, Operation::Update, None, Some(&mut other));
        assert_eq!(other.values[1], Value::Unchanged);
        c.apply(7, Operation::Delete, Some(&row(1, Value::Null)), None);
        let mut gone = row(1, Value::Unchanged);
        c.apply(7, Operation::Update, None, Some(&mut gone));
        assert_eq!(gone.values[1], Value::Unchanged);
        assert_eq!(c.bytes(), 0);
        // A small value replaces a large one.
        c.apply(7, Operation::Insert, None, Some(&mut row(3, text(&a))));
        c.apply(7, Operation::Update, None, Some(&mut row(3, text("x"))));
        let mut small = row(3, Value::Unchanged);
        c.apply(7, Operation::Update, None, Some(&mut small));
        assert_eq!(small.values[1], Value::Unchanged);
        // A key change carries the value to the new key.
        c.apply(7, Operation::Insert, None, Some(&mut row(4, text(&a))));
        let mut moved = row(5, Value::Unchanged);
        c.apply(7, Operation::Update, Some(&row(4, Value::Null)), Some(&mut moved));
        assert_eq!(moved.values[1], text(&a));
        c.forget_relation(7);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let mut c = ToastCache::default();
        let chunk: Value = Value::String("z".repeat(1024 * 1024).into());
        for id in 0..200 {
            c.apply(1, Operation::Insert, None, Some(&mut row(id, chunk.clone())));
        }
        assert!(c.bytes() <= BUDGET_BYTES, "{}", c.bytes());
        let mut newest = row(199, Value::Unchanged);
        c.apply(1, Operation::Update, None, Some(&mut newest));
        assert_eq!(newest.values[1], chunk, "the newest values are kept");
    }
}
