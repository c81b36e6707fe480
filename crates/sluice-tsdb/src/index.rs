//! The store's in-memory index: every series' label set, its head and newest sample, and the postings
//! (label pair → series ids) that selectors narrow through.
//!
//! Memory is what bounds a collector (issue 13: 200 instances, ~86,000 series, under 150 MiB), so label sets
//! are kept as symbol ids — 8 bytes a pair where two shared `Arc<str>` cost 32 — and series sit in pages
//! indexed by id (ids are dense and never reused), not in a hash map with its empty buckets. A [`Labels`]
//! is built only when a query hands a series out.

use std::sync::Arc;

// Seeded per process (label values come from scraped databases, so not a fixed hash like Fx), and several
// times faster than std's SipHash on these short keys: looking every sample's labels up was 8 % of a
// collector's CPU with SipHash (perf, bench/collection.sh).
use foldhash::HashMap;

use promql_parser::label::{MatchOp, Matcher};

use crate::gorilla;
use crate::labels::Labels;

/// A label set as (name, value) symbol ids, in the order of its [`Labels`] (sorted by name).
type Pairs = Arc<[(u32, u32)]>;

/// Every label name and value once; a symbol id is an index into `strings`.
#[derive(Default)]
struct Symbols {
    strings: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Symbols {
    fn id(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn intern(&mut self, s: &Arc<str>) -> u32 {
        if let Some(id) = self.ids.get(&**s) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 distinct label strings");
        self.strings.push(s.clone());
        self.ids.insert(s.clone(), id);
        id
    }

    fn str(&self, id: u32) -> &Arc<str> {
        &self.strings[id as usize]
    }
}

pub(crate) struct SeriesState {
    pairs: Pairs,
    /// The raw samples not yet in a chunk, kept encoded (a few bytes a sample; the `head` table holds them
    /// durably). Rollup tiers have no head: they are written whole when data ages out.
    pub head: gorilla::Appender,
    pub last_ts: i64,
    /// The value of the newest raw sample (at `last_ts`), when known since the store opened (for `/metrics`).
    pub last_value: Option<f64>,
}

/// Series slots per page: pages are allocated whole, so at most one page's slots are spare (where a `Vec`
/// doubling would leave up to half).
const PAGE: usize = 4096;

#[derive(Default)]
pub(crate) struct Index {
    symbols: Symbols,
    by_key: HashMap<Pairs, i64>,
    /// Slot `id % PAGE` of page `id / PAGE` holds series `id`.
    pages: Vec<Box<[Option<SeriesState>]>>,
    len: usize,
    /// Per label pair, the ids of its series in ascending order (ids only grow, so an insert is a push; a
    /// sorted `Vec` is 8 bytes an id where a `BTreeSet` node costs ~100 bytes for the many one-series pairs).
    postings: HashMap<(u32, u32), Vec<i64>>,
    pub next_id: i64,
}

impl Index {
    pub fn insert(&mut self, id: i64, labels: &Labels) {
        let pairs: Pairs = labels.shared_pairs().map(|(k, v)| (self.symbols.intern(k), self.symbols.intern(v))).collect();
        for pair in pairs.iter() {
            let ids = self.postings.entry(*pair).or_default();
            match ids.last() {
                Some(&last) if last >= id => {
                    if let Err(at) = ids.binary_search(&id) {
                        ids.insert(at, id);
                    }
                }
                _ => ids.push(id),
            }
        }
        self.by_key.insert(pairs.clone(), id);
        let slot = usize::try_from(id).expect("series ids are not negative");
        while self.pages.len() <= slot / PAGE {
            self.pages.push(std::iter::repeat_with(|| None).take(PAGE).collect());
        }
        let entry = &mut self.pages[slot / PAGE][slot % PAGE];
        if entry.is_none() {
            self.len += 1;
        }
        *entry = Some(SeriesState { pairs, head: Default::default(), last_ts: i64::MIN, last_value: None });
        self.next_id = self.next_id.max(id + 1);
    }

    /// The id of the series with exactly these labels. `scratch` is reused between calls (no allocation
    /// per sample).
    pub fn lookup(&self, labels: &Labels, scratch: &mut Vec<(u32, u32)>) -> Option<i64> {
        scratch.clear();
        for (k, v) in labels.iter() {
            scratch.push((self.symbols.id(k)?, self.symbols.id(v)?));
        }
        self.by_key.get(scratch.as_slice()).copied()
    }

    pub fn get(&self, id: i64) -> Option<&SeriesState> {
        let slot = usize::try_from(id).ok()?;
        self.pages.get(slot / PAGE)?[slot % PAGE].as_ref()
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut SeriesState> {
        let slot = usize::try_from(id).ok()?;
        self.pages.get_mut(slot / PAGE)?[slot % PAGE].as_mut()
    }

    /// Every series with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &SeriesState)> {
        self.pages.iter().flat_map(|p| p.iter()).enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i as i64, s)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (i64, &mut SeriesState)> {
        self.pages.iter_mut().flat_map(|p| p.iter_mut()).enumerate().filter_map(|(i, s)| s.as_mut().map(|s| (i as i64, s)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A series' label set, built from its symbols.
    pub fn labels(&self, s: &SeriesState) -> Arc<Labels> {
        Arc::new(Labels::from_sorted(s.pairs.iter().map(|(k, v)| (self.symbols.str(*k).clone(), self.symbols.str(*v).clone())).collect()))
    }

    /// Ids of the series every matcher accepts. Equality matchers narrow through the postings; the rest
    /// are tested per candidate. A matcher on a missing label sees the empty string, as in Prometheus.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<i64> {
        let mut lists: Vec<&[i64]> = Vec::new();
        for m in matchers.iter().filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty()) {
            let ids = self.symbols.id(&m.name).zip(self.symbols.id(&m.value)).and_then(|pair| self.postings.get(&pair));
            match ids {
                Some(ids) => lists.push(ids),
                None => return Vec::new(),
            }
        }
        // A name no series has matches nothing but the empty string.
        let names: Vec<Option<u32>> = matchers.iter().map(|m| self.symbols.id(&m.name)).collect();
        let check = |s: &SeriesState| {
            matchers.iter().zip(&names).all(|(m, name)| {
                let value = name.and_then(|n| s.pairs.iter().find(|(k, _)| *k == n)).map_or("", |(_, v)| &**self.symbols.str(*v));
                m.is_match(value)
            })
        };
        // The shortest list, kept where every other list has the id too; then every matcher checked.
        lists.sort_by_key(|l| l.len());
        match lists.split_first() {
            Some((shortest, rest)) => {
                shortest.iter().copied().filter(|id| rest.iter().all(|l| l.binary_search(id).is_ok()) && self.get(*id).is_some_and(check)).collect()
            }
            None => self.iter().filter(|(_, s)| check(s)).map(|(id, _)| id).collect(),
        }
    }

    /// Every label name in use, once per value it has (callers deduplicate).
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(|(k, _)| &**self.symbols.str(*k))
    }

    /// Every value of the label `name`.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = self.symbols.id(name);
        self.postings.keys().filter(move |(k, _)| Some(*k) == name).map(|(_, v)| &**self.symbols.str(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_slot_stays_small() {
        // 86,000 series × this is the index's floor: 16 (pairs) + 72 (appender) + 8 + 16.
        assert!(std::mem::size_of::<Option<SeriesState>>() <= 112, "{}", std::mem::size_of::<Option<SeriesState>>());
    }

    #[test]
    fn series_are_found_by_labels_and_selected_by_matchers() {
        let mut index = Index::default();
        let a = Labels::metric("up", &[("instance", "a"), ("job", "db")]);
        let b = Labels::metric("up", &[("instance", "b"), ("job", "db")]);
        index.insert(0, &a);
        index.insert(5000, &b); // on another page, with a gap before it
        let mut scratch = Vec::new();
        assert_eq!(index.lookup(&a, &mut scratch), Some(0));
        assert_eq!(index.lookup(&b, &mut scratch), Some(5000));
        assert_eq!(index.lookup(&Labels::metric("up", &[("instance", "c")]), &mut scratch), None);
        assert_eq!(index.lookup(&Labels::metric("up", &[("instance", "a")]), &mut scratch), None, "a subset is another series");
        assert_eq!(index.len(), 2);
        assert_eq!(*index.labels(index.get(5000).unwrap()), b);
        let m = |op, name: &str, value: &str| Matcher::new(op, name, value);
        assert_eq!(index.select(&[m(MatchOp::Equal, "job", "db")]), vec![0, 5000]);
        assert_eq!(index.select(&[m(MatchOp::Equal, "job", "db"), m(MatchOp::NotEqual, "instance", "a")]), vec![5000]);
        assert_eq!(index.select(&[m(MatchOp::Equal, "missing", "")]), vec![0, 5000], "an absent label is the empty string");
        assert!(index.select(&[m(MatchOp::Equal, "job", "web")]).is_empty());
        let mut names: Vec<&str> = index.label_names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names, ["__name__", "instance", "job"]);
        let mut values: Vec<&str> = index.label_values("instance").collect();
        values.sort_unstable();
        assert_eq!(values, ["a", "b"]);
        assert_eq!(index.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![0, 5000]);
    }
}
