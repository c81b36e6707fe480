//! A series' identity: its label set, `__name__` included, sorted by label name.

use std::fmt;
use std::sync::Arc;

pub const METRIC_NAME: &str = "__name__";

/// Names and values are shared strings: the store's index keeps each once (as a symbol) and hands out label
/// sets whose strings are those symbols, so the thousands of series of one instance share its name, id and
/// engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<(Arc<str>, Arc<str>)>);

impl Labels {
    /// Builds a label set: sorted by name, empty values dropped (Prometheus treats an empty label as absent),
    /// the last value winning for a repeated name.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self::from_shared(pairs.into_iter().map(|(k, v)| (Arc::from(k.into()), Arc::from(v.into()))))
    }

    /// [`Labels::new`] from strings already shared: a collector building thousands of label sets a scrape
    /// clones its instance's labels by reference instead of copying them into each.
    pub fn from_shared(pairs: impl IntoIterator<Item = (Arc<str>, Arc<str>)>) -> Self {
        let mut v: Vec<(Arc<str>, Arc<str>)> = pairs.into_iter().collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v.retain(|(_, v)| !v.is_empty());
        Labels(v)
    }

    /// A label set from pairs already sorted by name, unique and non-empty (the store's index rebuilding one).
    pub(crate) fn from_sorted(pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0) && pairs.iter().all(|(_, v)| !v.is_empty()));
        Labels(pairs)
    }

    /// A metric name and its labels.
    pub fn metric(name: &str, pairs: &[(&str, &str)]) -> Self {
        Self::new(std::iter::once((METRIC_NAME, name)).chain(pairs.iter().copied()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name)).ok().map(|i| &*self.0[i].1)
    }

    pub fn name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs as the shared strings they are (for the store's index, which interns them).
    pub(crate) fn shared_pairs(&self) -> impl Iterator<Item = &(Arc<str>, Arc<str>)> {
        self.0.iter()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn without_name(&self) -> Labels {
        Labels(self.0.iter().filter(|(k, _)| &**k != METRIC_NAME).cloned().collect())
    }

    /// Keeps only `names` (`keep = true`) or drops them.
    pub fn project(&self, names: &[String], keep: bool) -> Labels {
        Labels(self.0.iter().filter(|(k, _)| names.iter().any(|n| n.as_str() == &**k) == keep).cloned().collect())
    }

    pub fn with(&self, name: &str, value: &str) -> Labels {
        Labels::new(self.0.iter().map(|(k, v)| (&**k, &**v)).chain(std::iter::once((name, value))))
    }

    /// The canonical text form, `name{a="x",b="y"}`, which is also the store's series key.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.0.iter().filter(|(k, _)| &**k != METRIC_NAME) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))?;
        }
        f.write_str("}")
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(&**k, &**v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_rendered() {
        let l = Labels::new([("job", "a"), (METRIC_NAME, "up"), ("instance", "x\"y"), ("empty", ""), ("job", "b")]);
        assert_eq!(l.key(), r#"up{instance="x\"y",job="b"}"#);
        assert_eq!(l.get("job"), Some("b"));
        assert_eq!(l.without_name().key(), r#"{instance="x\"y",job="b"}"#);
    }
}
