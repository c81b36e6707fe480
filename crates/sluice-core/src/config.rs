//! Reading configuration so that a file's every problem is reported in one run, each with the full path of
//! its key (`sinks.f.batch_max`), never one error per run.
//!
//! serde stops at the first error of a struct, and an internally tagged enum buffers its fields and loses
//! the path into them. So a component's section is read here from a [`toml::Value`] with [`take`]: a value
//! of the wrong type is reported with its path, taken out of the section (so its default applies), and the
//! section is read again, until it reads or cannot (a required key was the one at fault). Errors are
//! recognised by their kind (missing key, unknown key, bad value), which this module's own error type
//! carries, never by their message text.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// A problem in a configuration, with the path of the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `source.server_id`, `shape.rules[2]`, `sinks.f.url`; `(syntax)` or `(interpolation)` for the text.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

/// `parent.key`, or `key` at the top.
pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// Reads a `T` from `value` (the section at `path`), adding every problem to `errors`. `None` when the
/// section cannot be read at all (a required key is missing or was wrong); its other keys' problems are
/// still reported.
pub fn take<T: DeserializeOwned>(value: toml::Value, path: &str, errors: &mut Vec<ConfigError>) -> Option<T> {
    let mut value = value;
    // Keys taken out because their value was wrong: their absence is not a second problem.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    // Each round removes one key, so a section cannot loop longer than it has keys; the bound is a guard.
    for _ in 0..256 {
        let err = match serde_path_to_error::deserialize::<_, T>(ValueDeserializer(value.clone())) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut at: Vec<Step> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            })
            .collect();
        match err.into_inner() {
            DeError::Missing(field) => {
                at.push(Step::Key(field.to_string()));
                if !removed.contains(&at) {
                    errors.push(ConfigError::new(render(path, &at), "is missing"));
                }
                return None;
            }
            DeError::Unknown { key, expected } => {
                // serde_path_to_error's path already ends at the unknown key; add it when it does not.
                let step = Step::Key(key);
                if at.last() != Some(&step) {
                    at.push(step);
                }
                let message = if expected.is_empty() {
                    "unknown key: this section takes none".to_string()
                } else {
                    format!("unknown key; expected one of {}", expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                };
                errors.push(ConfigError::new(render(path, &at), message));
                if !remove(&mut value, &at) {
                    return None;
                }
            }
            DeError::Other(message) => {
                errors.push(ConfigError::new(render(path, &at), message));
                // An element of a list: the list goes (removing one element would shift the others' paths).
                while matches!(at.last(), Some(Step::Index(_))) {
                    at.pop();
                }
                if at.is_empty() || !remove(&mut value, &at) {
                    return None;
                }
                removed.push(at);
            }
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(base: &str, steps: &[Step]) -> String {
    let mut out = base.to_string();
    for s in steps {
        match s {
            Step::Key(k) => out = key_path(&out, k),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() { "(top)".to_string() } else { out }
}

/// Removes the key at `steps`; `false` when there is no such key.
fn remove(value: &mut toml::Value, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else { return false };
    let mut cur = value;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), toml::Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        _ => false,
    }
}

/// The error of [`ValueDeserializer`]: the kinds [`take`] acts on, kept apart from the text.
#[derive(Debug)]
enum DeError {
    Missing(&'static str),
    Unknown { key: String, expected: &'static [&'static str] },
    Other(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Missing(k) => write!(f, "missing key `{k}`"),
            DeError::Unknown { key, .. } => write!(f, "unknown key `{key}`"),
            DeError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Other(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Missing(field)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::Unknown { key: field.to_string(), expected }
    }
}

/// A deserializer over a parsed TOML value whose error type is [`DeError`].
struct ValueDeserializer(toml::Value);

impl<'de> IntoDeserializer<'de, DeError> for ValueDeserializer {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

fn table_access(t: toml::Table) -> MapDeserializer<'static, impl Iterator<Item = (String, ValueDeserializer)>, DeError> {
    MapDeserializer::new(t.into_iter().map(|(k, v)| (k, ValueDeserializer(v))))
}

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_string(s),
            toml::Value::Integer(i) => visitor.visit_i64(i),
            toml::Value::Float(f) => visitor.visit_f64(f),
            toml::Value::Boolean(b) => visitor.visit_bool(b),
            toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
            toml::Value::Array(a) => {
                let mut seq = SeqDeserializer::new(a.into_iter().map(ValueDeserializer));
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            toml::Value::Table(t) => {
                let mut map = table_access(t);
                let v = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(v)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // TOML has no null: a present key is a value.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _name: &'static str, _variants: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            // A unit variant: `start = "now"`.
            toml::Value::String(s) => visitor.visit_enum(StringDeserializer::<DeError>::new(s)),
            // A variant with data: `start = { gtid = "0-1-5" }`.
            toml::Value::Table(t) if t.len() == 1 => visitor.visit_enum(MapAccessDeserializer::new(table_access(t))),
            toml::Value::Table(t) => Err(de::Error::invalid_length(t.len(), &"a table with exactly one key naming the form")),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

fn unexpected(v: &toml::Value) -> de::Unexpected<'_> {
    match v {
        toml::Value::String(s) => de::Unexpected::Str(s),
        toml::Value::Integer(i) => de::Unexpected::Signed(*i),
        toml::Value::Float(f) => de::Unexpected::Float(*f),
        toml::Value::Boolean(b) => de::Unexpected::Bool(*b),
        toml::Value::Datetime(_) => de::Unexpected::Other("a date-time"),
        toml::Value::Array(_) => de::Unexpected::Seq,
        toml::Value::Table(_) => de::Unexpected::Map,
    }
}

/// Splits `type` off a component's section: the tag of an internally tagged enum, read by hand so that the
/// rest of the section keeps its paths. `None` (with the error recorded) when the section is not a table or
/// has no string `type`.
pub fn split_tag(value: toml::Value, path: &str, types: &[&str], errors: &mut Vec<ConfigError>) -> Option<(String, toml::Value)> {
    let toml::Value::Table(mut t) = value else {
        errors.push(ConfigError::new(path, "expected a table with a `type` key"));
        return None;
    };
    let one_of = || types.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    match t.remove("type") {
        Some(toml::Value::String(tag)) if types.contains(&tag.as_str()) => Some((tag, toml::Value::Table(t))),
        Some(toml::Value::String(tag)) => {
            errors.push(ConfigError::new(key_path(path, "type"), format!("unknown type `{tag}`; expected one of {}", one_of())));
            None
        }
        Some(_) => {
            errors.push(ConfigError::new(key_path(path, "type"), format!("expected a string, one of {}", one_of())));
            None
        }
        None => {
            errors.push(ConfigError::new(key_path(path, "type"), format!("is missing; one of {}", one_of())));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sink {
        url: String,
        #[serde(default = "five")]
        batch_max: usize,
        #[serde(default = "ten_s", with = "humantime_serde")]
        timeout: Duration,
        #[serde(default)]
        start: Start,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        #[serde(default)]
        n: u32,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Start {
        #[default]
        Now,
        Earliest,
        Gtid(String),
    }

    fn five() -> usize {
        5
    }

    fn ten_s() -> Duration {
        Duration::from_secs(10)
    }

    fn read(text: &str) -> (Option<Sink>, Vec<ConfigError>) {
        let v: toml::Value = toml::from_str(text).unwrap();
        let mut errors = Vec::new();
        let s = take::<Sink>(v, "sinks.f", &mut errors);
        (s, errors)
    }

    #[test]
    fn every_bad_value_is_named_in_one_pass() {
        let (s, errors) = read("url = 'x'\nbatch_max = -1\ntimeout = '10 parsecs'\nstart = 'yesterday'\ninclude = ['a', 5]\nurll = 1\nnested = { n = 'q' }\n");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["sinks.f.batch_max", "sinks.f.include[1]", "sinks.f.nested.n", "sinks.f.start", "sinks.f.timeout", "sinks.f.urll"], "{errors:?}");
        // Bad values fall back to their defaults, so the section still reads for its own validation.
        let s = s.unwrap();
        assert_eq!((s.batch_max, s.timeout, s.start), (5, Duration::from_secs(10), Start::Now));
        assert_eq!((s.url.as_str(), s.include.len(), s.nested.map(|n| n.n)), ("x", 0, Some(0)));
        assert!(errors[0].message.contains("-1"), "{}", errors[0].message);
        assert!(errors[3].message.contains("yesterday") && errors[3].message.contains("earliest"), "{}", errors[3].message);
        assert!(errors[5].message.contains("`batch_max`"), "{}", errors[5].message);
    }

    #[test]
    fn a_required_key_at_fault_is_reported_once() {
        let (s, errors) = read("url = 5\nbatch_max = 'many'\n");
        assert!(s.is_none());
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["sinks.f.batch_max", "sinks.f.url"]);
        let (_, errors) = read("batch_max = 3\n");
        assert_eq!(errors, [ConfigError::new("sinks.f.url", "is missing")]);
    }

    #[test]
    fn tagged_forms_read() {
        let (s, errors) = read("url = 'x'\nstart = { gtid = '0-1-5' }\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.unwrap().start, Start::Gtid("0-1-5".into()));
    }

    #[test]
    fn the_tag_is_checked() {
        let mut errors = Vec::new();
        let v: toml::Value = toml::from_str("type = 'kafka'").unwrap();
        assert!(split_tag(v, "sinks.k", &["nats", "http"], &mut errors).is_none());
        assert_eq!(errors[0].path, "sinks.k.type");
        assert!(errors[0].message.contains("`kafka`") && errors[0].message.contains("`nats`"));
    }
}
